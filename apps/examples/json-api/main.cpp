// json-api: a small JSON service on prefork's HTTP API. Everything else (command line,
// config file, workers, reload, metrics, preforkctl) comes with prefork::run.
//   json-api -w 2 &                       # listens on api.sock, control socket api.ctl
//   curl --unix-socket api.sock -d '{"a": 1, "b": 2}' http://localhost/sum   # {"sum":3}
#include <prefork/http.hpp>
#include <prefork/run.hpp>
#include <prefork/worker_context.hpp>

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json.hpp>

#include <chrono>

namespace http = prefork::http;
namespace json = boost::json;

// POST /sum {"a": 1, "b": 2} -> {"sum": 3}; 400 for anything else.
http::response sum(const http::request& request) {
  const json::value body = http::parse_json(request);  // throws http_error(400) when not JSON
  const json::object* numbers = body.if_object();
  if (numbers == nullptr || !numbers->contains("a") || !numbers->contains("b") || !numbers->at("a").is_int64() ||
      !numbers->at("b").is_int64())
    throw http::http_error(400, R"(expected {"a": integer, "b": integer})");
  return http::json(200, {{"sum", numbers->at("a").as_int64() + numbers->at("b").as_int64()}});
}

// GET /later -> waits 100 ms without blocking the worker, then answers.
boost::asio::awaitable<http::response> later(const http::request&) {
  boost::asio::steady_timer timer(co_await boost::asio::this_coro::executor, std::chrono::milliseconds(100));
  co_await timer.async_wait(boost::asio::use_awaitable);
  co_return http::text(200, "later\n");
}

int main(int argc, char** argv) {
  http::router api;
  api.get("/health", [](const http::request&) { return http::text(200, "ok\n"); });
  api.get("/pid", [](const http::request& request) {
    const prefork::worker_context& worker = request.worker();
    return http::json(200, {{"pid", worker.pid()}, {"worker", worker.id()}, {"served", worker.requests()}});
  });
  api.post("/sum", &sum);
  api.get("/later", &later);

  prefork::run_options options;  // its own --help, --version and defaults
  options.name = "json-api";
  options.description = "A small JSON API (a prefork example).";
  options.version = "1.0.0";
  options.defaults = {{"bind", "unix:api.sock"}, {"control", "api.ctl"}};
  return prefork::run(argc, argv, {http::make_app("api", std::move(api))}, std::move(options));
}
