// The metrics endpoint: one route on the library's HTTP loop, served by the master.
#include "ops/metrics_endpoint.hpp"

#include "prefork/http/app.hpp"
#include "prefork/log.hpp"
#include "prefork/worker_context.hpp"

#include <exception>
#include <utility>

namespace prefork::detail {

boost::asio::awaitable<void> serve_metrics_connection(socket_type socket, std::shared_ptr<const config> settings,
                                                      std::function<std::string()> render) {
  auto routes = std::make_shared<http::router>();
  routes->get("/metrics", [&render](const http::request&) {
    try {
      return http::response(200, render(), metrics_content_type);
    } catch (const std::exception& e) {
      log_error("metrics rendering failed", {{"error", e.what()}});
      return http::text(500, "Internal Server Error\n").close_connection();
    }
  });
  // The loop reads its limits and counts its answers through a worker context: the
  // master's own, for this connection (id 0: not a worker).
  worker_context context(socket.get_executor(), *settings, 0, 0);
  co_await http::serve(connection(std::move(socket), 0, context), std::move(routes));
}

}  // namespace prefork::detail
