// The master's metrics endpoint: the library's HTTP loop (http::serve) with one route,
// GET /metrics with the Prometheus text.
#pragma once

#include "prefork/config.hpp"
#include "prefork/connection.hpp"

#include <boost/asio/awaitable.hpp>

#include <functional>
#include <memory>
#include <string>
#include <string_view>

namespace prefork::detail {

/// Content-Type of the Prometheus text exposition format.
inline constexpr std::string_view metrics_content_type = "text/plain; version=0.0.4";

/// Serves the metrics endpoint on one accepted connection with http::serve under
/// `settings` (the `http` limits, `keepalive`): GET /metrics (any query string) → 200,
/// Content-Type metrics_content_type, body render(); HEAD /metrics → the same head; another
/// path → 404; another method → 405 with `Allow: GET, HEAD`; malformed → 400, and every
/// other answer of the HTTP loop (408, 413, 431, keep-alive, pipelining). render() runs on
/// the socket's executor for each GET; when it throws, the answer is 500 (logged) and the
/// connection is closed.
boost::asio::awaitable<void> serve_metrics_connection(socket_type socket, std::shared_ptr<const config> settings,
                                                      std::function<std::string()> render);

}  // namespace prefork::detail
