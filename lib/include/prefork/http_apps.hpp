// The built-in HTTP app `hello` (SPEC section 4), built on the public HTTP API
// (prefork/http.hpp) like any user's service.
#pragma once

#include "prefork/app.hpp"
#include "prefork/http/router.hpp"

namespace prefork {

/// The built-in HTTP app "hello": `GET /` -> 200 `Hello, world!\n` (text/plain; charset=utf-8),
/// `HEAD /` -> the same headers without body, `GET /healthz` -> 200 `ok\n`; another method on
/// those paths -> 405 with `Allow: GET, HEAD`; any other path (whatever the method) -> 404.
/// Before routing: malformed -> 400, headers over http.max_header_bytes -> 431, body over
/// http.max_body_bytes -> 413, request not complete within http.request_timeout -> 408;
/// each of these closes the connection. Keep-alive idles up to `keepalive` seconds;
/// a draining worker answers with `Connection: close`.
app make_hello_app();

/// hello's routes, for apps that extend them (testbed adds its own to these).
http::router hello_routes();

}  // namespace prefork
