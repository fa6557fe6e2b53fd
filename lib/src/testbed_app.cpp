// The `testbed` app: hello's routes plus fault injection for test harnesses (SPEC 4), as a
// router on detail::serve_http. No Beast here: the connection loop is in http_apps.cpp.
#include "prefork/builtin_apps.hpp"

#include "prefork/detail/http_router.hpp"
#include "prefork/log.hpp"
#include "prefork/worker_context.hpp"

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <array>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <unistd.h>

namespace prefork {
namespace {

namespace asio = boost::asio;
using detail::http_method;
using detail::http_request;
using detail::http_response;
using detail::route_result;

constexpr std::int64_t max_duration_ms = 60000;
// Longest part of a bad `ms` value quoted back in a 400 message.
constexpr std::size_t max_quoted_value = 32;

enum class allowed_methods { get_head, get, post };

/// True if the request's method may use the route; otherwise fills a 405 with its Allow.
bool method_allowed(const http_request& request, http_response& response, allowed_methods allowed) {
  const http_method m = request.method;
  bool ok = false;
  std::string_view allow_line;
  switch (allowed) {
    case allowed_methods::get_head:
      ok = m == http_method::get || m == http_method::head;
      allow_line = "Allow: GET, HEAD\r\n";
      break;
    case allowed_methods::get:
      ok = m == http_method::get;
      allow_line = "Allow: GET\r\n";
      break;
    case allowed_methods::post:
      ok = m == http_method::post;
      allow_line = "Allow: POST\r\n";
      break;
  }
  if (!ok) {
    response.status = 405;
    response.extra_headers = allow_line;
    response.body = "Method Not Allowed\n";
  }
  return ok;
}

/// The value of `name` in a query string (`a=1&ms=5`): the first occurrence, empty for a
/// bare `name` or `name=`; nullopt when absent. No percent-decoding (digits need none).
std::optional<std::string_view> query_parameter(std::string_view query, std::string_view name) {
  while (!query.empty()) {
    const std::size_t amp = query.find('&');
    const std::string_view pair = query.substr(0, amp);
    const std::size_t eq = pair.find('=');
    if (pair.substr(0, eq) == name) return eq == std::string_view::npos ? std::string_view{} : pair.substr(eq + 1);
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
  return std::nullopt;
}

void fill_bad_request(http_response& response) {
  response.status = 400;
  response.body = response.storage;
}

/// The `ms` parameter as a duration 0..60000 ms. When it is missing or invalid, fills a
/// 400 whose message names the problem and returns nullopt.
std::optional<std::chrono::milliseconds> parse_ms(const http_request& request, http_response& response) {
  const std::optional<std::string_view> text = query_parameter(request.query, "ms");
  if (!text) {
    response.storage = "missing query parameter ms: expected an integer 0..60000\n";
    fill_bad_request(response);
    return std::nullopt;
  }
  std::int64_t value = -1;
  const char* const first = text->data();
  const char* const last = first + text->size();
  const auto [end, ec] = std::from_chars(first, last, value);
  if (text->empty() || ec != std::errc{} || end != last || value < 0 || value > max_duration_ms) {
    response.storage = "ms: expected an integer 0..60000, got \"";
    response.storage += text->substr(0, max_quoted_value);
    if (text->size() > max_quoted_value) response.storage += "...";
    response.storage += "\"\n";
    fill_bad_request(response);
    return std::nullopt;
  }
  return std::chrono::milliseconds(value);
}

template <typename Integer>
void append_number(std::string& out, Integer value) {
  std::array<char, 24> digits{};
  const auto [end, ignored] = std::to_chars(digits.data(), digits.data() + digits.size(), value);
  out.append(digits.data(), end);
}

/// "<verb> N ms\n" into storage, as the body.
void fill_duration_body(http_response& response, std::string_view verb, std::chrono::milliseconds duration) {
  response.storage = verb;
  response.storage += ' ';
  append_number(response.storage, duration.count());
  response.storage += " ms\n";
  response.body = response.storage;
}

route_result route_whoami(const http_request& request, http_response& response, connection& conn) {
  if (!method_allowed(request, response, allowed_methods::get_head)) return route_result::done;
  const worker_context& worker = conn.worker();
  // Formatted into storage, which keeps its capacity: no allocation after the first one.
  std::string& out = response.storage;
  out = "{\"worker\":";
  append_number(out, worker.id());
  out += ",\"pid\":";
  append_number(out, worker.pid());
  out += ",\"generation\":";
  append_number(out, worker.generation());
  out += "}";
  response.content_type = "application/json";
  response.body = out;
  return route_result::done;
}

route_result route_burn(const http_request& request, http_response& response) {
  if (!method_allowed(request, response, allowed_methods::get_head)) return route_result::done;
  const std::optional<std::chrono::milliseconds> duration = parse_ms(request, response);
  if (!duration) return route_result::done;
  // Deliberately blocks the event loop: no other connection, and no heartbeat, meanwhile.
  const auto until = std::chrono::steady_clock::now() + *duration;
  while (std::chrono::steady_clock::now() < until) {
  }
  fill_duration_body(response, "burned", *duration);
  return route_result::done;
}

[[noreturn]] void crash(const worker_context& worker) {
  log_warning("testbed: /crash requested, aborting the worker", {{"pid", worker.pid()}});
  std::abort();
}

[[noreturn]] void hang(const worker_context& worker) {
  log_warning("testbed: /hang requested, blocking the worker's event loop forever", {{"pid", worker.pid()}});
  // pause() returns only when a signal handler ran; the worker reads its signals through a
  // signalfd, so nothing but a signal that kills (the master's KILL after `timeout`) ends it.
  for (;;) ::pause();
}

route_result route_testbed(const http_request& request, http_response& response, connection& conn) {
  const std::string_view path = request.path;
  if (path == "/whoami") return route_whoami(request, response, conn);
  if (path == "/sleep") {
    if (!method_allowed(request, response, allowed_methods::get_head)) return route_result::done;
    if (!parse_ms(request, response)) return route_result::done;
    return route_result::deferred;  // route_testbed_deferred sleeps without blocking the loop
  }
  if (path == "/burn") return route_burn(request, response);
  if (path == "/crash") {
    if (!method_allowed(request, response, allowed_methods::get)) return route_result::done;
    crash(conn.worker());
  }
  if (path == "/hang") {
    if (!method_allowed(request, response, allowed_methods::get)) return route_result::done;
    hang(conn.worker());
  }
  if (path == "/echo") {
    if (!method_allowed(request, response, allowed_methods::post)) return route_result::done;
    response.content_type = "application/octet-stream";
    response.body = request.body;  // valid until the response is written
    return route_result::done;
  }
  return detail::route_hello(request, response, conn);
}

/// The deferred half of /sleep (the only route that defers; `ms` was validated).
/// A failed wait throws: serve_http ends the connection and the worker logs it.
asio::awaitable<void> route_testbed_deferred(const http_request& request, http_response& response, connection& conn) {
  const std::optional<std::chrono::milliseconds> duration = parse_ms(request, response);
  if (!duration) co_return;  // unreachable: route_testbed checked it; the 400 is filled
  asio::steady_timer timer(conn.get_executor(), *duration);
  co_await timer.async_wait(asio::use_awaitable);
  fill_duration_body(response, "slept", *duration);
}

void warn_fault_injection(worker_context& /*worker*/) {
  log_warning("testbed app: fault injection enabled, never use in production");
}

// Not a coroutine: hands serve_http's awaitable on, no extra frame.
asio::awaitable<void> serve_testbed(connection conn) {
  return detail::serve_http(std::move(conn), detail::http_router{&route_testbed, &route_testbed_deferred});
}

}  // namespace

app make_testbed_app() { return app{"testbed", &serve_testbed, &warn_fault_injection}; }

}  // namespace prefork
