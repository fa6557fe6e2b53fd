// The built-in HTTP apps of SPEC section 4, served with Boost.Beast (kept out of this
// header). The connection loop they share is detail/http_router.hpp.
#pragma once

#include "prefork/app.hpp"

namespace prefork {

/// The built-in HTTP app "hello": `GET /` -> 200 `Hello, world!\n` (text/plain; charset=utf-8),
/// `HEAD /` -> the same headers without body, `GET /healthz` -> 200 `ok\n`; another method on
/// those paths -> 405 with `Allow: GET, HEAD`; any other path (whatever the method) -> 404.
/// Before routing: malformed -> 400, headers over http.max_header_bytes -> 431, body over
/// http.max_body_bytes -> 413, request not complete within http.request_timeout -> 408;
/// each of these closes the connection. Keep-alive idles up to `keepalive` seconds;
/// a draining worker answers with `Connection: close`.
app make_hello_app();

}  // namespace prefork
