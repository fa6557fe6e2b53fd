// An HTTP service as a prefork app: the library's HTTP/1.1 connection loop serving a
// router's handlers, with every limit and guarantee the built-in apps have.
#pragma once

#include "prefork/app.hpp"
#include "prefork/connection.hpp"
#include "prefork/http/router.hpp"

#include <boost/asio/awaitable.hpp>

#include <memory>
#include <string>

namespace prefork::http {

/// Serves HTTP/1.0 and 1.1 on `conn` until the client or the worker ends it (SPEC 4),
/// asking `routes` for each response. Before routing: malformed requests -> 400, headers
/// over http.max_header_bytes -> 431, a body over http.max_body_bytes -> 413, a request
/// not complete within http.request_timeout -> 408, each closing the connection;
/// `Expect: 100-continue` is answered when the body is within limits. Keep-alive idles up
/// to `keepalive` seconds, pipelined requests are answered in order, a draining worker
/// answers `Connection: close` and hands its idle connections back on reload. Each
/// response carries Server, Date and Content-Length; HEAD gets the headers without the
/// body. A handler's http_error is answered with its status; any other exception is
/// answered 500 (the connection goes on) and logged with the worker id. Responses are
/// written without blocking the worker's loop, each write bounded by http.request_timeout.
boost::asio::awaitable<void> serve(connection conn, std::shared_ptr<const router> routes);

/// An app named `name` that serves `routes` with serve(). Set its on_worker_start and
/// on_worker_stop hooks on the result for per-worker state.
app make_app(std::string name, router routes);

}  // namespace prefork::http
