// serve_metrics_connection over a real socketpair: routing, limits and deadlines of the
// HTTP loop it shares with the apps, keep-alive, and a render() that throws.
#include "ops/metrics_endpoint.hpp"

#include "prefork/config.hpp"
#include "unit_support/raw_http.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/test/unit_test.hpp>

#include <sys/socket.h>

#include <array>
#include <chrono>
#include <exception>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>

namespace {

namespace asio = boost::asio;
using namespace prefork::unit_support;
using namespace std::chrono_literals;
using prefork::socket_type;
using prefork::detail::serve_metrics_connection;
using clock_type = std::chrono::steady_clock;

constexpr auto test_timeout = 5s;
const std::string metrics_text = "# HELP x_total A test.\n# TYPE x_total counter\nx_total 1\n";

struct client_plan {
  std::string send;                         // written at once (may be empty)
  bool close_after_send = false;            // close the client right after sending
  bool shutdown_after_send = true;          // half-close after sending (the server then ends)
  std::chrono::milliseconds read_delay{0};  // waits before reading the answer
};

struct outcome {
  bool server_done = false;
  bool client_done = false;
  std::string received;  // everything read until EOF
  clock_type::duration server_elapsed{};
  int render_calls = 0;
  std::exception_ptr server_error;
};

std::pair<socket_type, socket_type> socket_pair(asio::io_context& io) {
  int fds[2];
  BOOST_REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) == 0);
  const asio::generic::stream_protocol protocol(AF_UNIX, SOCK_STREAM);
  return {socket_type(io, protocol, fds[0]), socket_type(io, protocol, fds[1])};
}

asio::awaitable<void> run_client(socket_type client, client_plan plan, outcome& out) {
  if (!plan.send.empty()) {
    auto [ec, n] = co_await asio::async_write(client, asio::buffer(plan.send), asio::as_tuple(asio::use_awaitable));
    (void)n;
    if (ec && ec != asio::error::broken_pipe && ec != asio::error::connection_reset) {
      throw std::runtime_error("client write: " + ec.message());
    }
  }
  if (plan.close_after_send) {
    out.client_done = true;
    co_return;
  }
  if (plan.shutdown_after_send) client.shutdown(socket_type::shutdown_send);
  if (plan.read_delay.count() > 0) {
    asio::steady_timer timer(client.get_executor(), plan.read_delay);
    co_await timer.async_wait(asio::use_awaitable);
  }
  std::array<char, 4096> chunk{};
  while (true) {
    auto [ec, n] = co_await client.async_read_some(asio::buffer(chunk), asio::as_tuple(asio::use_awaitable));
    out.received.append(chunk.data(), n);
    if (ec) break;  // EOF: the server closed
  }
  out.client_done = true;
}

/// The settings of the exchange: `timeout` is the request deadline (and bounds lingering
/// and each write); an idle keep-alive connection ends after 1 s.
std::shared_ptr<const prefork::config> settings(std::chrono::milliseconds timeout) {
  auto cfg = std::make_shared<prefork::config>();
  cfg->http.request_timeout = timeout;
  cfg->keepalive = 1s;
  return cfg;
}

asio::awaitable<void> run_server(socket_type server, std::chrono::milliseconds timeout, std::string text,
                                 outcome& out) {
  const auto start = clock_type::now();
  auto render = [&out, text] {
    ++out.render_calls;
    return text;
  };
  co_await serve_metrics_connection(std::move(server), settings(timeout), render);
  out.server_elapsed = clock_type::now() - start;
  out.server_done = true;
}

outcome exchange(client_plan plan, std::chrono::milliseconds timeout = 2000ms, const std::string& text = metrics_text) {
  asio::io_context io;
  auto [server, client] = socket_pair(io);
  outcome out;
  asio::co_spawn(io, run_server(std::move(server), timeout, text, out),
                 [&out](std::exception_ptr e) { out.server_error = e; });
  asio::co_spawn(io, run_client(std::move(client), std::move(plan), out), [](std::exception_ptr e) {
    if (e) std::rethrow_exception(e);
  });
  io.run_for(test_timeout);
  BOOST_TEST(out.server_done, "server did not finish");
  BOOST_TEST(out.client_done, "client did not finish");
  BOOST_TEST(!out.server_error, "server threw");
  return out;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(metrics_endpoint)

BOOST_AUTO_TEST_CASE(get_metrics_answers_the_text) {
  for (const char* request : {"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", "GET /metrics HTTP/1.0\r\n\r\n",
                              "GET /metrics?name[]=up HTTP/1.1\r\nHost: x\r\n\r\n"}) {
    const outcome out = exchange({request});
    BOOST_TEST(status_line(out.received) == "HTTP/1.1 200 OK", request);
    BOOST_TEST(has_line(out.received, "Content-Type: text/plain; version=0.0.4"));
    BOOST_TEST(has_line(out.received, "Content-Length: " + std::to_string(metrics_text.size())));
    BOOST_TEST(body_of(out.received) == metrics_text);
    BOOST_TEST(out.render_calls == 1);
  }
}

BOOST_AUTO_TEST_CASE(head_metrics_has_no_body) {
  const outcome out = exchange({"HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n"});
  BOOST_TEST(status_line(out.received) == "HTTP/1.1 200 OK");
  BOOST_TEST(has_line(out.received, "Content-Length: " + std::to_string(metrics_text.size())));
  BOOST_TEST(body_of(out.received).empty());
}

BOOST_AUTO_TEST_CASE(other_paths_are_404) {
  for (const char* request : {"GET / HTTP/1.1\r\n\r\n", "GET /metricsx HTTP/1.1\r\n\r\n",
                              "GET /metrics/ HTTP/1.1\r\n\r\n", "GET /healthz HTTP/1.1\r\n\r\n"}) {
    const outcome out = exchange({request});
    BOOST_TEST(status_line(out.received) == "HTTP/1.1 404 Not Found", request);
    BOOST_TEST(out.render_calls == 0);
  }
}

BOOST_AUTO_TEST_CASE(other_methods_are_405) {
  for (const char* request :
       {"POST /metrics HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello", "OPTIONS /metrics HTTP/1.1\r\n\r\n",
        "DELETE /metrics HTTP/1.1\r\n\r\n", "BREW /metrics HTTP/1.1\r\n\r\n"}) {
    const outcome out = exchange({request});
    BOOST_TEST(status_line(out.received) == "HTTP/1.1 405 Method Not Allowed", request);
    BOOST_TEST(has_line(out.received, "Allow: GET, HEAD"));
    BOOST_TEST(out.render_calls == 0);
  }
}

BOOST_AUTO_TEST_CASE(malformed_head_is_400) {
  for (const char* request :
       {"hello\r\n\r\n", "GET /metrics HTTP/9.9\r\n\r\n", "GET /metrics HTTP/1.1\r\nbad header\r\n\r\n"}) {
    const outcome out = exchange({request});
    BOOST_TEST(status_line(out.received) == "HTTP/1.1 400 Bad Request", request);
    BOOST_TEST(out.render_calls == 0);
  }
}

BOOST_AUTO_TEST_CASE(head_over_8_kib_is_431) {
  const std::string big = "GET /metrics HTTP/1.1\r\nX-Big: " + std::string(9000, 'a') + "\r\n\r\n";
  const outcome out = exchange({big});
  BOOST_TEST(status_line(out.received) == "HTTP/1.1 431 Request Header Fields Too Large");
  BOOST_TEST(out.render_calls == 0);

  // Just under the limit is fine.
  const std::string fits = "GET /metrics HTTP/1.1\r\nX-Big: " + std::string(7000, 'a') + "\r\n\r\n";
  BOOST_TEST(status_line(exchange({fits}).received) == "HTTP/1.1 200 OK");
}

BOOST_AUTO_TEST_CASE(pipelined_requests_are_each_answered) {
  const outcome out = exchange({"GET /metrics HTTP/1.1\r\n\r\nGET /metrics HTTP/1.1\r\n\r\n"});
  BOOST_TEST(status_line(out.received) == "HTTP/1.1 200 OK");
  BOOST_TEST(out.render_calls == 2);
  BOOST_TEST(out.received.find(metrics_text) != out.received.rfind(metrics_text), "two responses");
}

BOOST_AUTO_TEST_CASE(idle_keep_alive_connection_ends_after_the_keepalive_time) {
  client_plan plan;
  plan.send = "GET /metrics HTTP/1.1\r\n\r\n";
  plan.shutdown_after_send = false;
  const outcome out = exchange(plan);
  BOOST_TEST(body_of(out.received) == metrics_text);
  BOOST_TEST(millis(out.server_elapsed) >= 900);
}

BOOST_AUTO_TEST_CASE(stalled_client_is_answered_408_at_the_deadline) {
  client_plan plan;
  plan.send = "GET /metr";
  plan.shutdown_after_send = false;
  const outcome out = exchange(plan, 200ms);
  BOOST_TEST(status_line(out.received) == "HTTP/1.1 408 Request Timeout");
  BOOST_TEST(millis(out.server_elapsed) >= 190);
  BOOST_TEST(out.render_calls == 0);
}

BOOST_AUTO_TEST_CASE(silent_client_is_closed_at_the_deadline) {
  client_plan plan;
  plan.shutdown_after_send = false;
  const outcome out = exchange(plan, 150ms);
  BOOST_TEST(out.received.empty());
  BOOST_TEST(millis(out.server_elapsed) >= 140);
}

BOOST_AUTO_TEST_CASE(client_gone_ends_quietly) {
  client_plan closes;
  closes.close_after_send = true;
  outcome out = exchange(closes);
  BOOST_TEST(millis(out.server_elapsed) < 1000, "EOF ends the exchange at once");

  client_plan partial_then_eof;
  partial_then_eof.send = "GET /metrics HTTP/1.1\r\nHost";
  partial_then_eof.shutdown_after_send = true;
  out = exchange(partial_then_eof);
  BOOST_TEST(out.received.empty(), "no answer to a truncated head");
  BOOST_TEST(millis(out.server_elapsed) < 1000);
}

BOOST_AUTO_TEST_CASE(lingering_after_a_refusal_is_bounded) {
  // A refused request (431) whose client neither reads at once nor closes: the server
  // drains what it sends for at most the deadline, not forever.
  client_plan plan;
  plan.send = "GET /metrics HTTP/1.1\r\nX-Big: " + std::string(9000, 'a') + "\r\n\r\n";
  plan.shutdown_after_send = false;
  plan.read_delay = 500ms;
  const outcome out = exchange(plan, 300ms);
  BOOST_TEST(status_line(out.received) == "HTTP/1.1 431 Request Header Fields Too Large");
  BOOST_TEST(millis(out.server_elapsed) >= 250);
}

BOOST_AUTO_TEST_CASE(client_that_does_not_read_is_cut_off) {
  // An answer far larger than the socket buffers, and a client that reads too late.
  const std::string huge(16 * 1024 * 1024, 'x');
  client_plan plan;
  plan.send = "GET /metrics HTTP/1.1\r\n\r\n";
  plan.shutdown_after_send = false;
  // The client starts reading long after the deadline (a busy CI machine must not make
  // the server look late): the server must have given up well before.
  plan.read_delay = 3000ms;
  const outcome out = exchange(plan, 200ms, huge);
  BOOST_TEST(millis(out.server_elapsed) >= 190);
  BOOST_TEST(millis(out.server_elapsed) < 2500, "the write is abandoned at the deadline");
  BOOST_TEST(status_line(out.received) == "HTTP/1.1 200 OK");
  BOOST_TEST(out.received.size() < huge.size(), "the answer was cut off");
}

BOOST_AUTO_TEST_CASE(render_failure_is_500_and_closes) {
  asio::io_context io;
  auto [server, client] = socket_pair(io);
  std::exception_ptr error;
  bool done = false;
  auto throwing_render = []() -> std::string { throw std::runtime_error("render failed"); };
  asio::co_spawn(io, serve_metrics_connection(std::move(server), settings(1000ms), throwing_render),
                 [&](std::exception_ptr e) {
                   error = e;
                   done = true;
                 });
  const std::string request = "GET /metrics HTTP/1.1\r\n\r\n";
  asio::write(client, asio::buffer(request));
  io.run_for(test_timeout);
  BOOST_TEST_REQUIRE(done, "did not finish");
  BOOST_TEST(!error);
  std::string received(4096, '\0');
  boost::system::error_code ec;
  received.resize(client.read_some(asio::buffer(received), ec));
  BOOST_TEST(status_line(received) == "HTTP/1.1 500 Internal Server Error");
  BOOST_TEST(has_line(received, "Connection: close"));
}

BOOST_AUTO_TEST_SUITE_END()
