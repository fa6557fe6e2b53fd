// The hello app and the public HTTP API (http::serve, router, request, response), driven
// over a real socketpair with raw bytes.
#include "prefork/http_apps.hpp"

#include "prefork/config.hpp"
#include "prefork/connection.hpp"
#include "prefork/http.hpp"
#include "prefork/worker_context.hpp"
#include "unit_support/raw_http.hpp"
#include "worker/worker_drain.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/json/object.hpp>
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstddef>
#include <cstdio>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <sys/socket.h>
#include <vector>

namespace {

namespace asio = boost::asio;
using namespace prefork::unit_support;
using namespace std::chrono_literals;
using prefork::socket_type;
using clock_type = std::chrono::steady_clock;

// ---------------------------------------------------------------------------------------
// Client side: raw bytes in, responses out.

struct step {
  std::string send;                    // written as one async_write (may be empty)
  int responses = 1;                   // complete responses to read afterwards
  bool head = false;                   // the responses answer HEAD: no body follows
  std::function<void()> before = {};   // runs before sending (e.g. begin_drain)
  std::chrono::milliseconds pause{0};  // waits before sending
};

enum class ending {
  close_client,  // the client closes after its steps
  expect_close,  // the client reads until the server closes
};

struct transcript {
  std::vector<std::string> responses;
  std::string trailing;  // bytes after the expected responses, up to EOF (expect_close)
  bool server_closed = false;
  clock_type::duration elapsed{};  // from the start to the server's EOF (expect_close)
};

/// Reads one more chunk into `pending`; false on EOF or error.
asio::awaitable<bool> read_more(socket_type& client, std::string& pending) {
  char chunk[65536];
  auto [ec, n] = co_await client.async_read_some(asio::buffer(chunk), asio::as_tuple(asio::use_awaitable));
  pending.append(chunk, n);
  co_return !ec;
}

asio::awaitable<void> converse(socket_type& client, std::vector<step> steps, ending end, transcript& out) {
  const auto start = clock_type::now();
  std::string pending;
  bool peer_gone = false;
  for (step& s : steps) {
    if (s.pause.count() > 0) {
      asio::steady_timer timer(client.get_executor(), s.pause);
      co_await timer.async_wait(asio::use_awaitable);
    }
    if (s.before) s.before();
    if (!s.send.empty() && !peer_gone) {
      auto [ec, n] = co_await asio::async_write(client, asio::buffer(s.send), asio::as_tuple(asio::use_awaitable));
      (void)n;
      // A server that refused the request may close before it read everything. Do not
      // write again then: Asio would wait for a writability edge that never comes.
      if (ec == asio::error::broken_pipe || ec == asio::error::connection_reset) {
        peer_gone = true;
      } else if (ec) {
        throw std::runtime_error("client write: " + ec.message());
      }
    }
    for (int i = 0; i < s.responses; ++i) {
      std::size_t length = 0;
      while ((length = complete_response_length(pending, s.head)) == 0) {
        if (!co_await read_more(client, pending)) {
          out.trailing = pending;
          out.server_closed = true;
          out.elapsed = clock_type::now() - start;
          co_return;  // the checks see the missing responses
        }
      }
      out.responses.push_back(pending.substr(0, length));
      pending.erase(0, length);
    }
  }
  if (end == ending::expect_close) {
    while (co_await read_more(client, pending)) {
    }
    out.server_closed = true;
    out.elapsed = clock_type::now() - start;
  }
  out.trailing = pending;
  boost::system::error_code ignored;
  client.close(ignored);
}

// ---------------------------------------------------------------------------------------
// Server side: a real worker_context and connection on a fresh io_context.

struct harness {
  asio::io_context io;
  prefork::config cfg;
  std::optional<prefork::worker_context> worker;
  socket_type client{io};
  bool server_done = false;
  std::exception_ptr server_error;
  // How the worker hands connections over: a bare descriptor, registered with the reactor
  // only if the handler has to wait (as preforkd does), or an already open socket.
  bool registered_socket = false;

  harness() {
    cfg.http.max_header_bytes = 1024;
    cfg.http.max_body_bytes = 4096;
    cfg.http.request_timeout = 2s;
    cfg.keepalive = 2s;
  }

  /// Starts `handler` on the server end of a new socketpair (the worker is made once).
  void start(const prefork::connection_handler& handler) {
    if (!worker) worker.emplace(io.get_executor(), cfg, 1, 1);
    int fds[2];
    BOOST_REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) == 0);
    const asio::generic::stream_protocol unix_stream(AF_UNIX, SOCK_STREAM);
    client.assign(unix_stream, fds[1]);
    auto conn = registered_socket ? prefork::connection(socket_type(io, unix_stream, fds[0]), 0, *worker)
                                  : prefork::connection(fds[0], unix_stream, io.get_executor(), 0, *worker);
    asio::co_spawn(io, handler(std::move(conn)), [this](std::exception_ptr e) {
      server_done = true;
      server_error = e;
    });
  }

  void start_hello() { start(prefork::make_hello_app().serve); }

  /// Runs the conversation until both ends finished (bounded).
  transcript run(std::vector<step> steps, ending end, std::chrono::milliseconds timeout = 5s) {
    transcript out;
    bool client_done = false;
    std::exception_ptr client_error;
    asio::co_spawn(io, converse(client, std::move(steps), end, out), [&](std::exception_ptr e) {
      client_done = true;
      client_error = e;
    });
    io.run_for(timeout);
    BOOST_REQUIRE_MESSAGE(client_done, "client did not finish");
    if (client_error) std::rethrow_exception(client_error);
    BOOST_REQUIRE_MESSAGE(server_done, "server did not finish");
    return out;
  }
};

const std::string get_root = "GET / HTTP/1.1\r\nHost: test\r\n\r\n";

/// Checks the Date line (IMF-fixdate) and returns the response without it.
std::string without_date(const std::string& response) {
  const std::size_t at = response.find("\r\nDate: ");
  BOOST_REQUIRE_MESSAGE(at != std::string::npos, "no Date header in: " << response);
  const std::size_t end = response.find("\r\n", at + 2);
  const std::string date = response.substr(at + 8, end - at - 8);
  BOOST_TEST(date.size() == 29u);  // "Sun, 06 Nov 1994 08:49:37 GMT"
  BOOST_TEST(date.substr(3, 2) == ", ");
  BOOST_TEST(date.substr(25) == " GMT");
  return response.substr(0, at) + response.substr(end);
}

std::string hello_response(std::string_view connection_line = "") {
  return "HTTP/1.1 200 OK\r\nServer: prefork\r\nContent-Type: text/plain; charset=utf-8\r\n"
         "Content-Length: 14\r\n" +
         std::string(connection_line) + "\r\nHello, world!\n";
}

// ---------------------------------------------------------------------------------------
// A second router on the same loop: coroutine routes, formatted bodies, forced close,
// headers, path parameters, JSON, throws.

namespace http = prefork::http;

boost::asio::awaitable<http::response> route_slow(const http::request& request) {
  asio::steady_timer timer(co_await asio::this_coro::executor, 50ms);
  co_await timer.async_wait(asio::use_awaitable);
  co_return http::text(200, "slept for " + std::string(request.query()) + "\n");
}

http::router test_routes() {
  http::router r;
  r.get("/slow", &route_slow);
  r.post("/echo", [](const http::request& q) {
    return http::response(200, std::string(q.body()), http::application_octet_stream);
  });
  r.get("/big", [](const http::request&) { return http::text(200, std::string(8u << 20, 'x')); });
  r.get("/bye", [](const http::request&) { return http::text(200, "bye\n").close_connection(); });
  const auto method = [](const http::request& q) {
    http::response answer(200, std::string(q.method_string()) + (q.version() == 10 ? " 1.0\n" : " 1.1\n"));
    answer.set_content_type("");
    return answer;
  };
  r.get("/method", method);
  r.patch("/method", method);
  r.get("/unavailable", [](const http::request&) { return http::text(503, "later\n"); });
  r.get("/throw", [](const http::request&) -> http::response { throw std::runtime_error("route failed"); });
  r.get("/throw-later", [](const http::request&) -> boost::asio::awaitable<http::response> {
    asio::steady_timer timer(co_await asio::this_coro::executor, 1ms);
    co_await timer.async_wait(asio::use_awaitable);
    throw std::runtime_error("coroutine route failed");
  });
  r.get("/refuse", [](const http::request&) -> http::response { throw http::http_error(422, "no thanks"); });
  r.get("/header", [](const http::request& q) {
    return http::text(200, std::string(q.header("x-probe").value_or("none")) + "\n")
        .set_header("Cache-Control", "no-store");
  });
  r.get("/items/{id}/parts/{part}", [](const http::request& q) {
    return http::text(200, std::string(*q.path_parameter("id")) + "/" + std::string(*q.path_parameter("part")) + "\n");
  });
  r.post("/sum", [](const http::request& q) {
    const boost::json::value v = http::parse_json(q);
    const boost::json::object* o = v.if_object();
    if (o == nullptr || !o->contains("a") || !o->contains("b") || !o->at("a").is_int64() || !o->at("b").is_int64())
      throw http::http_error(400, "expected {\"a\": integer, \"b\": integer}");
    return http::json(200, {{"sum", o->at("a").as_int64() + o->at("b").as_int64()}});
  });
  r.add(http::verb::get, "/get-only", [](const http::request&) { return http::text(200, "get\n"); });
  r.add(http::verb::delete_, "/get-only", [](const http::request&) { return http::text(200, "deleted\n"); });
  r.get("/empty", [](const http::request&) { return http::response(204, "ignored"); });
  // Three pieces (one empty, which is skipped), 5 ms apart; ?fail=1 throws after the first.
  r.get("/stream", [](const http::request& q) {
    const bool fail = q.query_parameter("fail").has_value();
    auto pieces = std::make_shared<std::vector<std::string>>(std::vector<std::string>{"one,", "", "two,", "three"});
    return http::response(200).set_body_stream(
        [pieces, fail, next = std::size_t{0}]() mutable -> boost::asio::awaitable<std::optional<std::string>> {
          asio::steady_timer timer(co_await asio::this_coro::executor, 5ms);
          co_await timer.async_wait(asio::use_awaitable);
          if (fail && next == 1) throw std::runtime_error("stream failed");
          if (next == pieces->size()) co_return std::nullopt;
          co_return (*pieces)[next++];
        });
  });
  // A status Beast knows no reason phrase for.
  const auto teapot = [](const http::request&) { return http::text(418, "teapot\n"); };
  r.get("/", teapot);
  r.get("/other", teapot);
  return r;
}

boost::asio::awaitable<void> serve_test(prefork::connection conn) {
  static const auto routes = std::make_shared<const http::router>(test_routes());
  return http::serve(std::move(conn), routes);
}

}  // namespace

BOOST_AUTO_TEST_SUITE(http_apps)

BOOST_AUTO_TEST_CASE(get_root_answers_hello_world) {
  harness h;
  h.start_hello();
  const transcript t = h.run({{get_root}}, ending::close_client);
  BOOST_REQUIRE_EQUAL(t.responses.size(), 1u);
  BOOST_TEST(without_date(t.responses[0]) == hello_response());
  BOOST_TEST(h.worker->requests() == 1u);
  BOOST_TEST(!h.server_error);
}

BOOST_AUTO_TEST_CASE(head_root_has_the_headers_without_body) {
  harness h;
  h.start_hello();
  step head{"HEAD / HTTP/1.1\r\nHost: test\r\n\r\n"};
  head.head = true;
  const transcript t = h.run({head, {get_root}}, ending::close_client);
  BOOST_REQUIRE_EQUAL(t.responses.size(), 2u);
  const std::string full = hello_response();
  BOOST_TEST(without_date(t.responses[0]) == full.substr(0, full.size() - 14));
  BOOST_TEST(without_date(t.responses[1]) == full);  // nothing extra was sent after HEAD
}

BOOST_AUTO_TEST_CASE(healthz_and_query_strings) {
  harness h;
  h.start_hello();
  const transcript t = h.run(
      {{"GET /healthz HTTP/1.1\r\n\r\n"}, {"GET /healthz?probe=1 HTTP/1.1\r\n\r\n"}, {"GET /?a=b HTTP/1.1\r\n\r\n"}},
      ending::close_client);
  BOOST_REQUIRE_EQUAL(t.responses.size(), 3u);
  BOOST_TEST(status_line(t.responses[0]) == "HTTP/1.1 200 OK");
  BOOST_TEST(body_of(t.responses[0]) == "ok\n");
  BOOST_TEST(has_line(t.responses[0], "Content-Length: 3"));
  BOOST_TEST(body_of(t.responses[1]) == "ok\n");
  BOOST_TEST(body_of(t.responses[2]) == "Hello, world!\n");
}

BOOST_AUTO_TEST_CASE(unknown_path_is_404_for_any_method) {
  harness h;
  h.start_hello();
  step head{"HEAD /nope HTTP/1.1\r\n\r\n"};
  head.head = true;
  const transcript t = h.run({{"GET /nope HTTP/1.1\r\n\r\n"},
                              {"POST /nope HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi"},
                              {"OPTIONS * HTTP/1.1\r\n\r\n"},
                              {"GET /healthz/ HTTP/1.1\r\n\r\n"},
                              head},
                             ending::close_client);
  BOOST_REQUIRE_EQUAL(t.responses.size(), 5u);
  for (const std::string& r : t.responses) {
    BOOST_TEST(status_line(r) == "HTTP/1.1 404 Not Found");
    BOOST_TEST(has_line(r, "Content-Length: 10"));
  }
  BOOST_TEST(body_of(t.responses[0]) == "Not Found\n");
  BOOST_TEST(body_of(t.responses[4]).empty());
  BOOST_TEST(h.worker->requests() == 5u);
}

BOOST_AUTO_TEST_CASE(other_methods_are_405_with_allow) {
  harness h;
  h.start_hello();
  const transcript t = h.run({{"POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc"},
                              {"OPTIONS / HTTP/1.1\r\n\r\n"},
                              {"DELETE /healthz HTTP/1.1\r\n\r\n"},
                              {"FROB / HTTP/1.1\r\n\r\n"}},
                             ending::close_client);
  BOOST_REQUIRE_EQUAL(t.responses.size(), 4u);
  for (const std::string& r : t.responses) {
    BOOST_TEST(status_line(r) == "HTTP/1.1 405 Method Not Allowed");
    BOOST_TEST(has_line(r, "Allow: GET, HEAD"));
    BOOST_TEST(body_of(r) == "Method Not Allowed\n");
    BOOST_TEST(!has_line(r, "Connection: close"));  // the connection goes on
  }
}

BOOST_AUTO_TEST_CASE(malformed_requests_are_400_and_close) {
  for (const std::string& request : {std::string("GARBAGE\r\n\r\n"), std::string("GET / HTTP/2.0\r\n\r\n"),
                                     std::string("GET / HTTP/1.1\r\nNo colon here\r\n\r\n"),
                                     std::string("GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n"),
                                     std::string("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n")}) {
    BOOST_TEST_CONTEXT("request: " << request) {
      harness h;
      h.start_hello();
      const transcript t = h.run({{request}}, ending::expect_close);
      BOOST_REQUIRE_EQUAL(t.responses.size(), 1u);
      BOOST_TEST(status_line(t.responses[0]) == "HTTP/1.1 400 Bad Request");
      BOOST_TEST(has_line(t.responses[0], "Connection: close"));
      BOOST_TEST(body_of(t.responses[0]) == "Bad Request\n");
      BOOST_TEST(t.server_closed);
      BOOST_TEST(t.trailing.empty());
      BOOST_TEST(h.worker->requests() == 1u);
    }
  }
}

BOOST_AUTO_TEST_CASE(malformed_request_after_pipelined_good_one_answers_both_in_order) {
  harness h;
  h.start_hello();
  step s{get_root + "BAD\r\n\r\n" + get_root};
  s.responses = 2;
  const transcript t = h.run({s}, ending::expect_close);
  BOOST_REQUIRE_EQUAL(t.responses.size(), 2u);
  BOOST_TEST(status_line(t.responses[0]) == "HTTP/1.1 200 OK");
  BOOST_TEST(status_line(t.responses[1]) == "HTTP/1.1 400 Bad Request");
  BOOST_TEST(t.trailing.empty());
  BOOST_TEST(h.worker->requests() == 2u);
}

BOOST_AUTO_TEST_CASE(header_over_the_limit_is_431_and_close) {
  harness h;
  h.start_hello();
  const std::string request = "GET / HTTP/1.1\r\nX-Big: " + std::string(2000, 'a') + "\r\n\r\n";
  const transcript t = h.run({{request}}, ending::expect_close);
  BOOST_REQUIRE_EQUAL(t.responses.size(), 1u);
  BOOST_TEST(status_line(t.responses[0]) == "HTTP/1.1 431 Request Header Fields Too Large");
  BOOST_TEST(has_line(t.responses[0], "Connection: close"));
  BOOST_TEST(t.server_closed);
}

BOOST_AUTO_TEST_CASE(header_over_the_limit_sent_in_pieces_is_431) {
  // Each piece alone is under the limit (1024), the header as a whole is not: the limit
  // must hold across reads, not per read.
  harness h;
  h.start_hello();
  std::string first = "GET / HTTP/1.1\r\n";
  for (int i = 0; i < 60; ++i) first += "X-A" + std::to_string(i) + ": 1\r\n";
  std::string second;
  for (int i = 0; i < 60; ++i) second += "X-B" + std::to_string(i) + ": 1\r\n";
  second += "\r\n";
  BOOST_REQUIRE_LT(first.size(), 1024u);
  BOOST_REQUIRE_LT(second.size(), 1024u);
  step later{second};
  later.pause = 50ms;
  const transcript t = h.run({{first, 0}, later}, ending::expect_close);
  BOOST_REQUIRE_EQUAL(t.responses.size(), 1u);
  BOOST_TEST(status_line(t.responses[0]) == "HTTP/1.1 431 Request Header Fields Too Large");
  BOOST_TEST(t.server_closed);
}

BOOST_AUTO_TEST_CASE(header_trickled_field_by_field_is_431_at_the_limit) {
  harness h;
  h.start_hello();
  std::vector<step> steps{{"GET / HTTP/1.1\r\n", 0}};
  for (int i = 0; i < 100; ++i) {
    step piece{"X-T" + std::to_string(100 + i) + ": 1\r\n", 0};  // 11 bytes each
    piece.pause = 1ms;
    steps.push_back(piece);
  }
  steps.back().responses = 1;
  const transcript t = h.run(steps, ending::expect_close);
  BOOST_REQUIRE_EQUAL(t.responses.size(), 1u);
  BOOST_TEST(status_line(t.responses[0]) == "HTTP/1.1 431 Request Header Fields Too Large");
}

BOOST_AUTO_TEST_CASE(body_buffered_with_the_header_is_read_without_waiting) {
  // Header and chunked body arrive together; the header's budget (max_header_bytes, 1024)
  // ends inside the second chunk's size line. The rest is already buffered: the request is
  // answered at once, not after request_timeout.
  harness h;
  h.start_hello();
  const std::string head = "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
  const std::size_t first_chunk = 1022 - head.size() - 5 - 2;  // "XXX\r\n" + data + "\r\n"
  char size_line[16];
  std::snprintf(size_line, sizeof size_line, "%03zx\r\n", first_chunk);
  const std::string request =
      head + size_line + std::string(first_chunk, 'b') + "\r\n" + "10\r\n" + std::string(16, 'c') + "\r\n0\r\n\r\n";
  BOOST_REQUIRE_EQUAL(request.find("10\r\n" + std::string(16, 'c')), 1022u);
  const auto started = clock_type::now();
  const transcript t = h.run({{request}}, ending::close_client);
  BOOST_REQUIRE_EQUAL(t.responses.size(), 1u);
  BOOST_TEST(status_line(t.responses[0]) == "HTTP/1.1 405 Method Not Allowed");
  BOOST_TEST(millis(clock_type::now() - started) < 1000);
}

BOOST_AUTO_TEST_CASE(transfer_encoding_not_ending_in_chunked_is_400) {
  for (const std::string& request :
       {std::string("POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n"),
        std::string("POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n"),
        std::string("GET / HTTP/1.1\r\nTransfer-Encoding: identity\r\n\r\nGET / HTTP/1.1\r\n\r\n")}) {
    BOOST_TEST_CONTEXT("request: " << request) {
      harness h;
      h.start_hello();
      const transcript t = h.run({{request}}, ending::expect_close);
      BOOST_REQUIRE_EQUAL(t.responses.size(), 1u);
      BOOST_TEST(status_line(t.responses[0]) == "HTTP/1.1 400 Bad Request");
      BOOST_TEST(t.server_closed);
    }
  }
}

BOOST_AUTO_TEST_CASE(long_request_line_is_431) {
  harness h;
  h.start_hello();
  const transcript t = h.run({{"GET /" + std::string(3000, 'p') + " HTTP/1.1\r\n\r\n"}}, ending::expect_close);
  BOOST_REQUIRE_EQUAL(t.responses.size(), 1u);
  BOOST_TEST(status_line(t.responses[0]) == "HTTP/1.1 431 Request Header Fields Too Large");
}

BOOST_AUTO_TEST_CASE(header_just_under_the_limit_is_served) {
  harness h;
  h.start_hello();
  const std::string prefix = "GET / HTTP/1.1\r\nX-Fill: ";
  const std::string request = prefix + std::string(1000 - prefix.size() - 4, 'a') + "\r\n\r\n";
  BOOST_REQUIRE_EQUAL(request.size(), 1000u);
  const transcript t = h.run({{request}}, ending::close_client);
  BOOST_REQUIRE_EQUAL(t.responses.size(), 1u);
  BOOST_TEST(status_line(t.responses[0]) == "HTTP/1.1 200 OK");
}

BOOST_AUTO_TEST_CASE(two_mib_body_on_get_root_is_413_with_default_limits) {
  harness h;
  h.cfg.http = prefork::http_config{};  // 1 MiB body limit
  h.start_hello();
  const std::string request = "GET / HTTP/1.1\r\nContent-Length: 2097152\r\n\r\n" + std::string(2u << 20, 'b');
  const transcript t = h.run({{request}}, ending::expect_close);
  BOOST_REQUIRE_EQUAL(t.responses.size(), 1u);
  BOOST_TEST(status_line(t.responses[0]) == "HTTP/1.1 413 Payload Too Large");
  BOOST_TEST(has_line(t.responses[0], "Connection: close"));
  BOOST_TEST(body_of(t.responses[0]) == "Payload Too Large\n");
  BOOST_TEST(t.server_closed);
}

BOOST_AUTO_TEST_CASE(content_length_over_the_limit_is_413_before_the_body) {
  harness h;
  h.start_hello();
  const transcript t = h.run({{"POST / HTTP/1.1\r\nContent-Length: 4097\r\n\r\n"}}, ending::expect_close);
  BOOST_REQUIRE_EQUAL(t.responses.size(), 1u);
  BOOST_TEST(status_line(t.responses[0]) == "HTTP/1.1 413 Payload Too Large");
  BOOST_TEST(t.server_closed);
}

BOOST_AUTO_TEST_CASE(chunked_body_over_the_limit_is_413) {
  harness h;
  h.start_hello();
  std::string request = "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
  for (int i = 0; i < 5; ++i) request += "400\r\n" + std::string(1024, 'c') + "\r\n";  // 5 KiB
  request += "0\r\n\r\n";
  const transcript t = h.run({{request}}, ending::expect_close);
  BOOST_REQUIRE_EQUAL(t.responses.size(), 1u);
  BOOST_TEST(status_line(t.responses[0]) == "HTTP/1.1 413 Payload Too Large");
}

BOOST_AUTO_TEST_CASE(bodies_within_the_limit_are_read_and_the_connection_goes_on) {
  harness h;
  h.start_hello();
  const std::string chunked = "GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
  const std::string sized = "GET /healthz HTTP/1.1\r\nContent-Length: 4096\r\n\r\n" + std::string(4096, 'd');
  const transcript t = h.run({{chunked}, {sized}}, ending::close_client);
  BOOST_REQUIRE_EQUAL(t.responses.size(), 2u);
  BOOST_TEST(body_of(t.responses[0]) == "Hello, world!\n");
  BOOST_TEST(body_of(t.responses[1]) == "ok\n");
}

BOOST_AUTO_TEST_CASE(incomplete_request_is_408_and_close) {
  harness h;
  h.cfg.http.request_timeout = 200ms;
  h.start_hello();
  const transcript t = h.run({{"GET / HTTP/1.1\r\nHost: te"}}, ending::expect_close);
  BOOST_REQUIRE_EQUAL(t.responses.size(), 1u);
  BOOST_TEST(status_line(t.responses[0]) == "HTTP/1.1 408 Request Timeout");
  BOOST_TEST(has_line(t.responses[0], "Connection: close"));
  BOOST_TEST(t.server_closed);
  BOOST_TEST(millis(t.elapsed) >= 190);
  BOOST_TEST(millis(t.elapsed) < 1500);
}

BOOST_AUTO_TEST_CASE(slow_body_is_408_even_though_bytes_keep_coming) {
  harness h;
  h.cfg.http.request_timeout = 200ms;
  h.start_hello();
  std::vector<step> steps{{"POST / HTTP/1.1\r\nContent-Length: 100\r\n\r\n", 0}};
  for (int i = 0; i < 10; ++i) {
    step trickle{"x", 0};
    trickle.pause = 50ms;
    steps.push_back(trickle);
  }
  steps.push_back({"", 1});
  const transcript t = h.run(steps, ending::expect_close);
  BOOST_REQUIRE_EQUAL(t.responses.size(), 1u);
  BOOST_TEST(status_line(t.responses[0]) == "HTTP/1.1 408 Request Timeout");
}

BOOST_AUTO_TEST_CASE(silent_new_connection_closes_without_answer_after_request_timeout) {
  harness h;
  h.cfg.http.request_timeout = 150ms;
  h.start_hello();
  const transcript t = h.run({}, ending::expect_close);
  BOOST_TEST(t.server_closed);
  BOOST_TEST(t.trailing.empty());
  BOOST_TEST(millis(t.elapsed) >= 140);
  BOOST_TEST(h.worker->requests() == 0u);
}

BOOST_AUTO_TEST_CASE(keep_alive_serves_requests_on_one_connection) {
  harness h;
  h.start_hello();
  step later{get_root};
  later.pause = 30ms;  // the server is idle in wait_for_request in between
  const transcript t = h.run({{get_root}, later, {"GET /healthz HTTP/1.1\r\n\r\n"}}, ending::close_client);
  BOOST_REQUIRE_EQUAL(t.responses.size(), 3u);
  BOOST_TEST(without_date(t.responses[0]) == hello_response());
  BOOST_TEST(without_date(t.responses[1]) == hello_response());
  BOOST_TEST(body_of(t.responses[2]) == "ok\n");
  BOOST_TEST(h.worker->requests() == 3u);
}

BOOST_AUTO_TEST_CASE(pipelined_requests_are_answered_in_order) {
  harness h;
  h.start_hello();
  step s{get_root + "GET /healthz HTTP/1.1\r\n\r\n" + "GET /missing HTTP/1.1\r\n\r\n"};
  s.responses = 3;
  const transcript t = h.run({s}, ending::close_client);
  BOOST_REQUIRE_EQUAL(t.responses.size(), 3u);
  BOOST_TEST(body_of(t.responses[0]) == "Hello, world!\n");
  BOOST_TEST(body_of(t.responses[1]) == "ok\n");
  BOOST_TEST(status_line(t.responses[2]) == "HTTP/1.1 404 Not Found");
  BOOST_TEST(t.trailing.empty());
  BOOST_TEST(h.worker->requests() == 3u);
}

BOOST_AUTO_TEST_CASE(pipelined_request_split_across_writes) {
  harness h;
  h.start_hello();
  step first{get_root + "GET /heal", 1};
  step rest{"thz HTTP/1.1\r\n\r\n", 1};
  rest.pause = 20ms;
  const transcript t = h.run({first, rest}, ending::close_client);
  BOOST_REQUIRE_EQUAL(t.responses.size(), 2u);
  BOOST_TEST(body_of(t.responses[0]) == "Hello, world!\n");
  BOOST_TEST(body_of(t.responses[1]) == "ok\n");
}

BOOST_AUTO_TEST_CASE(request_sent_byte_by_byte) {
  harness h;
  h.start_hello();
  std::vector<step> steps;
  for (char c : get_root) {
    step s{std::string(1, c), 0};
    s.pause = 1ms;
    steps.push_back(s);
  }
  steps.push_back({"", 1});
  const transcript t = h.run(steps, ending::close_client);
  BOOST_REQUIRE_EQUAL(t.responses.size(), 1u);
  BOOST_TEST(without_date(t.responses[0]) == hello_response());
}

BOOST_AUTO_TEST_CASE(client_vanishing_at_every_byte_ends_the_connection_quietly) {
  const std::string request = "POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc";
  for (std::size_t n = 0; n < request.size(); ++n) {
    BOOST_TEST_CONTEXT("after " << n << " bytes") {
      harness h;
      h.start_hello();
      step s{request.substr(0, n), 0};
      // Half-close after the prefix: the server sees EOF in the middle of the request.
      std::vector<step> steps{s};
      step half_close{"", 0};
      half_close.before = [&h] {
        boost::system::error_code ignored;
        h.client.shutdown(socket_type::shutdown_send, ignored);
      };
      steps.push_back(half_close);
      const transcript t = h.run(steps, ending::expect_close);
      BOOST_TEST(t.server_closed);
      BOOST_TEST(t.trailing.empty());  // nobody to answer
      BOOST_TEST(!h.server_error);
      BOOST_TEST(h.worker->requests() == 0u);
    }
  }
}

BOOST_AUTO_TEST_CASE(http_1_0_closes_after_the_response) {
  harness h;
  h.start_hello();
  const transcript t = h.run({{"GET / HTTP/1.0\r\n\r\n"}}, ending::expect_close);
  BOOST_REQUIRE_EQUAL(t.responses.size(), 1u);
  BOOST_TEST(without_date(t.responses[0]) == hello_response("Connection: close\r\n"));
  BOOST_TEST(t.server_closed);
  BOOST_TEST(t.trailing.empty());
}

BOOST_AUTO_TEST_CASE(http_1_0_with_keep_alive_stays_open) {
  harness h;
  h.start_hello();
  const std::string request = "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n";
  const transcript t = h.run({{request}, {request}}, ending::close_client);
  BOOST_REQUIRE_EQUAL(t.responses.size(), 2u);
  BOOST_TEST(without_date(t.responses[0]) == hello_response("Connection: keep-alive\r\n"));
  BOOST_TEST(without_date(t.responses[1]) == hello_response("Connection: keep-alive\r\n"));
}

BOOST_AUTO_TEST_CASE(connection_close_from_the_client_is_honoured) {
  harness h;
  h.start_hello();
  step s{"GET / HTTP/1.1\r\nConnection: close\r\n\r\n" + get_root};  // the second one is dropped
  const transcript t = h.run({s}, ending::expect_close);
  BOOST_REQUIRE_EQUAL(t.responses.size(), 1u);
  BOOST_TEST(has_line(t.responses[0], "Connection: close"));
  BOOST_TEST(t.server_closed);
  BOOST_TEST(t.trailing.empty());
  BOOST_TEST(h.worker->requests() == 1u);
}

BOOST_AUTO_TEST_CASE(idle_keep_alive_connection_is_closed_after_keepalive) {
  harness h;
  h.cfg.keepalive = 100ms;
  h.start_hello();
  const auto start = clock_type::now();
  const transcript t = h.run({{get_root}}, ending::expect_close);
  BOOST_REQUIRE_EQUAL(t.responses.size(), 1u);
  BOOST_TEST(!has_line(t.responses[0], "Connection: close"));
  BOOST_TEST(t.server_closed);
  BOOST_TEST(t.trailing.empty());
  BOOST_TEST(millis(clock_type::now() - start) >= 95);
}

BOOST_AUTO_TEST_CASE(drain_closes_an_idle_connection) {
  harness h;
  h.cfg.keepalive = 10s;  // would outlive the test: only the drain can end it
  h.start_hello();
  step drain{"", 0};
  drain.pause = 20ms;
  drain.before = [&h] { prefork::detail::worker_drain::begin(*h.worker); };
  const transcript t = h.run({{get_root}, drain}, ending::expect_close, 2s);
  BOOST_REQUIRE_EQUAL(t.responses.size(), 1u);
  BOOST_TEST(t.server_closed);
  BOOST_TEST(t.trailing.empty());
  BOOST_TEST(millis(t.elapsed) < 1000);
}

BOOST_AUTO_TEST_CASE(request_answered_while_draining_carries_connection_close) {
  harness h;
  h.start_hello();
  step s{get_root};
  s.before = [&h] { prefork::detail::worker_drain::begin(*h.worker); };
  const transcript t = h.run({s}, ending::expect_close);
  BOOST_REQUIRE_EQUAL(t.responses.size(), 1u);
  BOOST_TEST(without_date(t.responses[0]) == hello_response("Connection: close\r\n"));
  BOOST_TEST(t.server_closed);
}

BOOST_AUTO_TEST_CASE(expect_100_continue_gets_an_interim_response) {
  harness h;
  h.start_hello();
  const transcript t =
      h.run({{"POST /healthz HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n"}, {"hello"}},
            ending::close_client);
  BOOST_REQUIRE_EQUAL(t.responses.size(), 2u);
  BOOST_TEST(t.responses[0] == "HTTP/1.1 100 Continue\r\n\r\n");
  BOOST_TEST(status_line(t.responses[1]) == "HTTP/1.1 405 Method Not Allowed");
  BOOST_TEST(h.worker->requests() == 1u);  // interim responses are not counted
}

BOOST_AUTO_TEST_CASE(client_gone_before_the_answer_ends_quietly) {
  harness h;
  h.start_hello();
  // The client closes right after writing: the server reads the request, its write fails.
  const transcript t = h.run({{get_root, 0}}, ending::close_client);
  BOOST_TEST(t.responses.empty());
  BOOST_TEST(!h.server_error);
  BOOST_TEST(h.worker->requests() == 0u);  // nothing was written
}

BOOST_AUTO_TEST_CASE(client_eof_between_requests_ends_quietly) {
  harness h;
  h.start_hello();
  const transcript t = h.run({{get_root}}, ending::close_client);
  BOOST_TEST(t.responses.size() == 1u);
  BOOST_TEST(!h.server_error);
}

// --- serve_http with another router ----------------------------------------------------

BOOST_AUTO_TEST_CASE(deferred_route_keeps_pipelined_order) {
  harness h;
  h.start(&serve_test);
  step s{"GET /slow?ms=50 HTTP/1.1\r\n\r\nGET /other HTTP/1.1\r\n\r\n"};
  s.responses = 2;
  const transcript t = h.run({s}, ending::close_client);
  BOOST_REQUIRE_EQUAL(t.responses.size(), 2u);
  BOOST_TEST(body_of(t.responses[0]) == "slept for ms=50\n");
  BOOST_TEST(status_line(t.responses[1]) == "HTTP/1.1 418 ");  // Beast knows no reason for it
  BOOST_TEST(body_of(t.responses[1]) == "teapot\n");
}

BOOST_AUTO_TEST_CASE(failed_flush_before_a_deferred_route_ends_quietly) {
  harness h;
  h.start(&serve_test);
  // Both requests are parsed from one read; the answer to the first is written before the
  // deferred route runs, and that write fails: the client is gone.
  const transcript t = h.run({{get_root + "GET /slow HTTP/1.1\r\n\r\n", 0}}, ending::close_client);
  BOOST_TEST(t.responses.empty());
  BOOST_TEST(!h.server_error);
  BOOST_TEST(h.worker->requests() == 0u);
}

BOOST_AUTO_TEST_CASE(any_status_gets_its_reason_phrase) {
  harness h;
  h.start(&serve_test);
  const transcript t = h.run({{"GET /unavailable HTTP/1.1\r\n\r\n"}}, ending::close_client);
  BOOST_REQUIRE_EQUAL(t.responses.size(), 1u);
  BOOST_TEST(status_line(t.responses[0]) == "HTTP/1.1 503 Service Unavailable");
  BOOST_TEST(body_of(t.responses[0]) == "later\n");
}

BOOST_AUTO_TEST_CASE(router_sees_method_version_and_body) {
  harness h;
  h.start(&serve_test);
  const std::string big(3000, 'e');
  const transcript t =
      h.run({{"POST /echo HTTP/1.1\r\nContent-Length: 3000\r\n\r\n" + big},
             {"PATCH /method HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"},
             {"POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"}},
            ending::close_client);
  BOOST_REQUIRE_EQUAL(t.responses.size(), 3u);
  BOOST_TEST(body_of(t.responses[0]) == big);
  BOOST_TEST(has_line(t.responses[0], "Content-Type: application/octet-stream"));
  BOOST_TEST(body_of(t.responses[1]) == "PATCH 1.0\n");
  BOOST_TEST(t.responses[1].find("Content-Type") == std::string::npos);
  BOOST_TEST(body_of(t.responses[2]) == "abcde");
}

BOOST_AUTO_TEST_CASE(an_open_socket_is_served_the_same_way) {
  harness h;
  h.registered_socket = true;
  h.start(&serve_test);
  step later{"GET /big HTTP/1.1\r\n\r\n"};
  later.pause = 30ms;  // idle in between: the second request is waited for
  const transcript t = h.run({{"GET /method HTTP/1.1\r\n\r\n"}, later}, ending::close_client);
  BOOST_REQUIRE_EQUAL(t.responses.size(), 2u);
  BOOST_TEST(body_of(t.responses[0]) == "GET 1.1\n");
  BOOST_TEST(body_of(t.responses[1]).size() == (8u << 20));
  BOOST_TEST(h.worker->requests() == 2u);
}

BOOST_AUTO_TEST_CASE(large_body_is_written_whole) {
  harness h;
  h.start(&serve_test);
  const transcript t = h.run({{"GET /big HTTP/1.1\r\n\r\n"}}, ending::close_client);
  BOOST_REQUIRE_EQUAL(t.responses.size(), 1u);
  BOOST_TEST(body_of(t.responses[0]).size() == (8u << 20));
  BOOST_TEST(has_line(t.responses[0], "Content-Length: 8388608"));
}

BOOST_AUTO_TEST_CASE(client_that_does_not_read_hits_the_write_deadline) {
  harness h;
  h.cfg.http.request_timeout = 150ms;
  h.start(&serve_test);
  // The 8 MiB answer fills the socket buffers; the client reads only after 600 ms.
  step ask{"GET /big HTTP/1.1\r\n\r\n", 0};
  step wait{"", 0};
  wait.pause = 600ms;
  wait.before = [&h] { BOOST_TEST(h.server_done); };
  const transcript t = h.run({ask, wait}, ending::expect_close);
  BOOST_TEST(t.server_closed);
  BOOST_TEST(t.trailing.size() < (8u << 20));
  BOOST_TEST(h.worker->requests() == 0u);  // not written
}

BOOST_AUTO_TEST_CASE(route_can_close_the_connection) {
  harness h;
  h.start(&serve_test);
  const transcript t = h.run({{"GET /bye HTTP/1.1\r\n\r\n"}}, ending::expect_close);
  BOOST_REQUIRE_EQUAL(t.responses.size(), 1u);
  BOOST_TEST(has_line(t.responses[0], "Connection: close"));
  BOOST_TEST(t.server_closed);
}

BOOST_AUTO_TEST_CASE(exception_in_a_route_is_answered_500_and_the_connection_goes_on) {
  harness h;
  h.start(&serve_test);
  const transcript t =
      h.run({{"GET /throw HTTP/1.1\r\n\r\n"}, {"GET /throw-later HTTP/1.1\r\n\r\n"}, {get_root}}, ending::close_client);
  BOOST_REQUIRE_EQUAL(t.responses.size(), 3u);
  BOOST_TEST(status_line(t.responses[0]) == "HTTP/1.1 500 Internal Server Error");
  BOOST_TEST(body_of(t.responses[0]) == "Internal Server Error\n");
  BOOST_TEST(status_line(t.responses[1]) == "HTTP/1.1 500 Internal Server Error");
  BOOST_TEST(status_line(t.responses[2]) == "HTTP/1.1 418 ");  // the same connection still serves
  BOOST_TEST(!h.server_error);
}

BOOST_AUTO_TEST_CASE(http_error_is_answered_with_its_status_and_message) {
  harness h;
  h.start(&serve_test);
  const transcript t = h.run({{"GET /refuse HTTP/1.1\r\n\r\n"}}, ending::close_client);
  BOOST_REQUIRE_EQUAL(t.responses.size(), 1u);
  BOOST_TEST(status_line(t.responses[0]) == "HTTP/1.1 422 Unprocessable Entity");
  BOOST_TEST(body_of(t.responses[0]) == "no thanks\n");
}

BOOST_AUTO_TEST_CASE(handler_reads_headers_and_sets_its_own) {
  harness h;
  h.start(&serve_test);
  const transcript t =
      h.run({{"GET /header HTTP/1.1\r\nX-Probe: 42\r\n\r\n"}, {"GET /header HTTP/1.1\r\n\r\n"}}, ending::close_client);
  BOOST_REQUIRE_EQUAL(t.responses.size(), 2u);
  BOOST_TEST(body_of(t.responses[0]) == "42\n");
  BOOST_TEST(has_line(t.responses[0], "Cache-Control: no-store"));
  BOOST_TEST(body_of(t.responses[1]) == "none\n");
}

BOOST_AUTO_TEST_CASE(path_parameters_match_one_segment_each) {
  harness h;
  h.start(&serve_test);
  const transcript t = h.run({{"GET /items/7/parts/wheel?x=1 HTTP/1.1\r\n\r\n"},
                              {"GET /items//parts/wheel HTTP/1.1\r\n\r\n"},
                              {"GET /items/7/parts/wheel/more HTTP/1.1\r\n\r\n"}},
                             ending::close_client);
  BOOST_REQUIRE_EQUAL(t.responses.size(), 3u);
  BOOST_TEST(body_of(t.responses[0]) == "7/wheel\n");
  BOOST_TEST(status_line(t.responses[1]) == "HTTP/1.1 404 Not Found");
  BOOST_TEST(status_line(t.responses[2]) == "HTTP/1.1 404 Not Found");
}

BOOST_AUTO_TEST_CASE(json_in_and_out_with_400_for_bad_json) {
  harness h;
  h.start(&serve_test);
  const std::string good = R"({"a": 1, "b": 2})";
  const std::string bad = R"({"a": 1,)";
  const std::string wrong = R"({"a": "1", "b": 2})";
  const auto post = [](const std::string& body) {
    return "POST /sum HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
           "\r\n\r\n" + body;
  };
  const transcript t = h.run({{post(good)}, {post(bad)}, {post(wrong)}, {post("")}}, ending::close_client);
  BOOST_REQUIRE_EQUAL(t.responses.size(), 4u);
  BOOST_TEST(body_of(t.responses[0]) == R"({"sum":3})");
  BOOST_TEST(has_line(t.responses[0], "Content-Type: application/json"));
  BOOST_TEST(status_line(t.responses[1]) == "HTTP/1.1 400 Bad Request");
  BOOST_TEST(body_of(t.responses[1]).starts_with("request body is not valid JSON: "));
  BOOST_TEST(body_of(t.responses[2]) == "expected {\"a\": integer, \"b\": integer}\n");
  BOOST_TEST(status_line(t.responses[3]) == "HTTP/1.1 400 Bad Request");
}

BOOST_AUTO_TEST_CASE(unknown_method_is_405_with_the_methods_the_path_has) {
  harness h;
  h.start(&serve_test);
  step head{"HEAD /get-only HTTP/1.1\r\n\r\n"};
  head.head = true;
  const transcript t = h.run({{"PUT /echo HTTP/1.1\r\nContent-Length: 0\r\n\r\n"},
                              head,
                              {"DELETE /get-only HTTP/1.1\r\n\r\n"},
                              {"PUT /nowhere HTTP/1.1\r\n\r\n"}},
                             ending::close_client);
  BOOST_REQUIRE_EQUAL(t.responses.size(), 4u);
  BOOST_TEST(status_line(t.responses[0]) == "HTTP/1.1 405 Method Not Allowed");
  BOOST_TEST(has_line(t.responses[0], "Allow: POST"));
  // add(verb::get) answers GET alone: HEAD is not served by it.
  BOOST_TEST(status_line(t.responses[1]) == "HTTP/1.1 405 Method Not Allowed");
  BOOST_TEST(has_line(t.responses[1], "Allow: GET, DELETE"));
  BOOST_TEST(body_of(t.responses[2]) == "deleted\n");
  BOOST_TEST(status_line(t.responses[3]) == "HTTP/1.1 404 Not Found");
}

BOOST_AUTO_TEST_CASE(no_content_has_neither_body_nor_length) {
  harness h;
  h.start(&serve_test);
  step empty{"GET /empty HTTP/1.1\r\n\r\n"};
  empty.head = true;  // no body follows the head
  const transcript t = h.run({empty, {get_root}}, ending::close_client);
  BOOST_REQUIRE_EQUAL(t.responses.size(), 2u);
  BOOST_TEST(status_line(t.responses[0]) == "HTTP/1.1 204 No Content");
  BOOST_TEST(t.responses[0].find("Content-Length") == std::string::npos);
  BOOST_TEST(body_of(t.responses[1]) == "teapot\n");
}

BOOST_AUTO_TEST_CASE(streamed_body_is_chunked_and_the_connection_goes_on) {
  harness h;
  h.start(&serve_test);
  const transcript t = h.run({{"GET /stream HTTP/1.1\r\n\r\n"}, {"GET /other HTTP/1.1\r\n\r\n"}}, ending::close_client);
  BOOST_REQUIRE_EQUAL(t.responses.size(), 2u);
  BOOST_TEST(has_line(t.responses[0], "Transfer-Encoding: chunked"));
  BOOST_TEST(t.responses[0].find("Content-Length") == std::string::npos);
  BOOST_TEST(dechunked_body_of(t.responses[0]) == "one,two,three");
  BOOST_TEST(body_of(t.responses[1]) == "teapot\n");
  BOOST_TEST(h.worker->requests() == 2u);
}

BOOST_AUTO_TEST_CASE(streamed_body_to_http_1_0_ends_with_the_connection) {
  harness h;
  h.start(&serve_test);
  const transcript t = h.run({{"GET /stream HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", 0}}, ending::expect_close);
  BOOST_TEST(has_line(t.trailing, "Connection: close"));
  BOOST_TEST(t.trailing.find("Transfer-Encoding") == std::string::npos);
  BOOST_TEST(body_of(t.trailing) == "one,two,three");
}

BOOST_AUTO_TEST_CASE(head_of_a_streamed_body_does_not_run_the_stream) {
  harness h;
  h.start(&serve_test);
  step head{"HEAD /stream HTTP/1.1\r\n\r\n"};
  head.head = true;
  const transcript t = h.run({head, {"GET /other HTTP/1.1\r\n\r\n"}}, ending::close_client);
  BOOST_REQUIRE_EQUAL(t.responses.size(), 2u);
  BOOST_TEST(has_line(t.responses[0], "Transfer-Encoding: chunked"));
  BOOST_TEST(body_of(t.responses[1]) == "teapot\n");
}

BOOST_AUTO_TEST_CASE(stream_that_throws_leaves_the_body_incomplete_and_closes) {
  harness h;
  h.start(&serve_test);
  const transcript t = h.run({{"GET /stream?fail=1 HTTP/1.1\r\n\r\n", 0}}, ending::expect_close);
  BOOST_TEST(t.server_closed);
  BOOST_TEST(has_line(t.trailing, "Transfer-Encoding: chunked"));
  BOOST_TEST(dechunked_body_of(t.trailing) == "one,");
  BOOST_TEST(t.trailing.find("\r\n0\r\n\r\n") == std::string::npos, "no final chunk");
  BOOST_TEST(!h.server_error);
}

BOOST_AUTO_TEST_CASE(hello_app_is_named_hello) {
  const prefork::app hello = prefork::make_hello_app();
  BOOST_TEST(hello.name == "hello");
  BOOST_TEST(static_cast<bool>(hello.serve));
}

BOOST_AUTO_TEST_SUITE_END()
