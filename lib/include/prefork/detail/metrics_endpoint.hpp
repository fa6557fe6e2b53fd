// The master's metrics endpoint: a minimal HTTP/1.x responder that answers one request on
// a connection (GET /metrics with the Prometheus text) and closes it.
#pragma once

#include "prefork/connection.hpp"

#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <functional>
#include <string>

namespace prefork::detail {

/// Content-Type of the Prometheus text exposition format.
inline constexpr const char* metrics_content_type = "text/plain; version=0.0.4";

/// Reads one HTTP/1.x request head from `socket` (at most 8 KiB), answers it, and closes
/// the connection (`Connection: close`; a request body is never read, only discarded):
/// - GET /metrics (any query string) → 200, Content-Type metrics_content_type, body render();
///   HEAD /metrics → the same head without body;
/// - another path → 404; another method → 405 with `Allow: GET, HEAD`;
/// - a malformed head → 400; a head over 8 KiB → 431.
/// `timeout` bounds the whole exchange: a client that does not send a complete head in time
/// is closed without an answer, one that does not read the answer in time is cut off; after
/// the answer the connection lingers at most 1 s more (within `timeout`) to drain what the
/// client still sends, so that closing does not reset the answer away.
/// Peer errors (reset, EOF) end the connection quietly and are not reported. render() is
/// called only for GET /metrics, on the socket's executor; an exception it throws
/// propagates out of the coroutine (co_spawn it with a handler that logs). Run one per
/// accepted connection.
boost::asio::awaitable<void> serve_metrics_connection(socket_type socket, std::function<std::string()> render,
                                                      std::chrono::milliseconds timeout);

}  // namespace prefork::detail
