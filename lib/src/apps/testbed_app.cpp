// The `testbed` app: hello's routes plus fault injection for test harnesses (SPEC 4), on
// the public HTTP API (prefork/http.hpp), as a user's service would be written.
#include "prefork/builtin_apps.hpp"

#include "prefork/http.hpp"
#include "prefork/log.hpp"
#include "prefork/worker_context.hpp"

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json/object.hpp>

#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <unistd.h>

namespace prefork {
namespace {

namespace asio = boost::asio;

constexpr std::int64_t max_duration_ms = 60000;
// Longest part of a bad `ms` value quoted back in a 400 message.
constexpr std::size_t max_quoted_value = 32;

/// The `ms` parameter as a duration 0..60000 ms. Throws http_error(400) naming the problem
/// when it is missing or invalid.
std::chrono::milliseconds parse_ms(const http::request& request) {
  const std::optional<std::string_view> text = request.query_parameter("ms");
  if (!text) throw http::http_error(400, "missing query parameter ms: expected an integer 0..60000");
  std::int64_t value = -1;
  const char* const first = text->data();
  const char* const last = first + text->size();
  const auto [end, ec] = std::from_chars(first, last, value);
  if (text->empty() || ec != std::errc{} || end != last || value < 0 || value > max_duration_ms) {
    std::string message = "ms: expected an integer 0..60000, got \"";
    message += text->substr(0, max_quoted_value);
    if (text->size() > max_quoted_value) message += "...";
    message += "\"";
    throw http::http_error(400, message);
  }
  return std::chrono::milliseconds(value);
}

/// "<verb> N ms\n".
http::response duration_answer(std::string_view verb, std::chrono::milliseconds duration) {
  std::string body(verb);
  body += ' ';
  body += std::to_string(duration.count());
  body += " ms\n";
  return http::text(200, std::move(body));
}

http::response route_whoami(const http::request& request) {
  const worker_context& worker = request.worker();
  return http::json(
      200, boost::json::object{{"worker", worker.id()}, {"pid", worker.pid()}, {"generation", worker.generation()}});
}

asio::awaitable<http::response> route_sleep(const http::request& request) {
  const std::chrono::milliseconds duration = parse_ms(request);
  asio::steady_timer timer(co_await asio::this_coro::executor, duration);
  co_await timer.async_wait(asio::use_awaitable);
  co_return duration_answer("slept", duration);
}

http::response route_burn(const http::request& request) {
  const std::chrono::milliseconds duration = parse_ms(request);
  // Deliberately blocks the event loop: no other connection, and no heartbeat, meanwhile.
  const auto until = std::chrono::steady_clock::now() + duration;
  while (std::chrono::steady_clock::now() < until) {
  }
  return duration_answer("burned", duration);
}

[[noreturn]] http::response route_crash(const http::request& request) {
  log_warning("testbed: /crash requested, aborting the worker", {{"pid", request.worker().pid()}});
  std::abort();
}

[[noreturn]] http::response route_hang(const http::request& request) {
  log_warning("testbed: /hang requested, blocking the worker's event loop forever", {{"pid", request.worker().pid()}});
  // pause() returns only when a signal handler ran; the worker reads its signals through a
  // signalfd, so nothing but a signal that kills (the master's KILL after `timeout`) ends it.
  for (;;) ::pause();
}

http::response route_throw(const http::request&) { throw std::runtime_error("testbed: /throw requested"); }

http::response route_echo(const http::request& request) {
  return http::response(200, std::string(request.body()), http::application_octet_stream);
}

void warn_fault_injection(worker_context& /*worker*/) {
  log_warning("testbed app: fault injection enabled, never use in production");
}

}  // namespace

app make_testbed_app() {
  http::router routes = hello_routes();
  routes.get("/whoami", &route_whoami);
  routes.get("/sleep", &route_sleep);
  routes.get("/burn", &route_burn);
  // GET alone: a HEAD probe must not kill a worker.
  routes.add(http::verb::get, "/crash", &route_crash);
  routes.add(http::verb::get, "/hang", &route_hang);
  routes.post("/echo", &route_echo);
  routes.get("/throw", &route_throw);
  app testbed = http::make_app("testbed", std::move(routes));
  testbed.on_worker_start = &warn_fault_injection;
  return testbed;
}

}  // namespace prefork
