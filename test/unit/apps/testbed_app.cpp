// The testbed app over real socketpairs: hello's routes, /whoami, /sleep (non-blocking),
// /burn (blocking), `ms` validation, POST /echo, 405s, and the start-up warning.
// /crash and /hang end the process: they are tested through the real preforkd.
#include "prefork/builtin_apps.hpp"

#include "prefork/config.hpp"
#include "prefork/connection.hpp"
#include "prefork/log.hpp"
#include "prefork/worker_context.hpp"
#include "unit_support/raw_http.hpp"
#include "worker/worker_drain.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstddef>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <sys/socket.h>
#include <unistd.h>
#include <vector>

namespace {

namespace asio = boost::asio;
using namespace prefork::unit_support;
using namespace std::chrono_literals;
using namespace std::string_literals;
using prefork::socket_type;
using clock_type = std::chrono::steady_clock;

/// One client's exchange: its requests (one write) and the responses read back.
struct exchange {
  std::string request;
  int responses = 1;
  bool head = false;
  std::vector<std::string> answers = {};
  bool done = false;
  bool server_closed = false;
  clock_type::duration elapsed{};  // from the write to the last response
};

/// Writes the request, reads `responses` complete responses, then closes the client.
asio::awaitable<void> converse(socket_type& client, exchange& x) {
  const auto start = clock_type::now();
  auto [write_ec, n] = co_await asio::async_write(client, asio::buffer(x.request), asio::as_tuple(asio::use_awaitable));
  (void)n;
  if (write_ec) throw std::runtime_error("client write: " + write_ec.message());
  std::string pending;
  for (int i = 0; i < x.responses; ++i) {
    std::size_t length = 0;
    while ((length = complete_response_length(pending, x.head)) == 0) {
      char chunk[65536];
      auto [ec, got] = co_await client.async_read_some(asio::buffer(chunk), asio::as_tuple(asio::use_awaitable));
      pending.append(chunk, got);
      if (ec) {
        x.server_closed = true;
        x.done = true;
        co_return;  // the checks see the missing responses
      }
    }
    x.answers.push_back(pending.substr(0, length));
    pending.erase(0, length);
  }
  x.elapsed = clock_type::now() - start;
  x.done = true;
  boost::system::error_code ignored;
  client.close(ignored);
}

/// A real worker_context (id 7, generation 3) on a fresh io_context, serving testbed
/// connections made from socketpairs.
struct harness {
  asio::io_context io;
  prefork::config cfg;
  std::optional<prefork::worker_context> worker;
  std::vector<std::unique_ptr<socket_type>> clients;
  int servers_done = 0;
  std::exception_ptr server_error;

  harness() {
    cfg.http.max_header_bytes = 1024;
    cfg.http.max_body_bytes = 4096;
    cfg.http.request_timeout = 2s;
    cfg.keepalive = 2s;
  }

  /// A new connection served by the testbed app; returns the client end.
  socket_type& connect() {
    if (!worker) worker.emplace(io.get_executor(), cfg, 7, 3);
    int fds[2];
    BOOST_REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) == 0);
    const asio::generic::stream_protocol unix_stream(AF_UNIX, SOCK_STREAM);
    socket_type server(io, unix_stream, fds[0]);
    clients.push_back(std::make_unique<socket_type>(io, unix_stream, fds[1]));
    asio::co_spawn(io, prefork::make_testbed_app().serve(prefork::connection(std::move(server), 0, *worker)),
                   [this](std::exception_ptr e) {
                     ++servers_done;
                     if (e) server_error = e;
                   });
    return *clients.back();
  }

  /// Starts `x` on a new connection (runs with the next run()).
  void start(exchange& x) {
    socket_type& client = connect();
    asio::co_spawn(io, converse(client, x), [](std::exception_ptr e) {
      if (e) std::rethrow_exception(e);
    });
  }

  /// Runs until every connection's server ended (bounded); fails "did not finish".
  void run(std::chrono::milliseconds timeout = 5s) {
    io.restart();  // after an earlier run() ran out of work
    io.run_for(timeout);
    BOOST_REQUIRE_MESSAGE(servers_done == static_cast<int>(clients.size()), "server did not finish");
    if (server_error) std::rethrow_exception(server_error);
  }

  /// One request on its own connection; returns its single response.
  std::string ask(const std::string& request, bool head = false) {
    exchange x{request};
    x.head = head;
    start(x);
    run();
    BOOST_REQUIRE_MESSAGE(x.done, "client did not finish");
    BOOST_REQUIRE_EQUAL(x.answers.size(), 1u);
    return x.answers[0];
  }
};

std::string get(std::string_view target) { return "GET " + std::string(target) + " HTTP/1.1\r\nHost: t\r\n\r\n"; }

}  // namespace

BOOST_AUTO_TEST_SUITE(testbed_app)

BOOST_AUTO_TEST_CASE(app_is_named_testbed_and_has_a_start_hook) {
  const prefork::app testbed = prefork::make_testbed_app();
  BOOST_TEST(testbed.name == "testbed");
  BOOST_TEST(static_cast<bool>(testbed.serve));
  BOOST_TEST(static_cast<bool>(testbed.on_worker_start));
  BOOST_TEST(!testbed.on_worker_stop);
}

BOOST_AUTO_TEST_CASE(worker_start_logs_the_production_warning_once) {
  namespace fs = std::filesystem;
  std::string pattern = (fs::temp_directory_path() / "prefork-testbed-XXXXXX").string();
  BOOST_REQUIRE(::mkdtemp(pattern.data()) != nullptr);
  const fs::path dir = pattern;
  const fs::path file = dir / "log.txt";
  BOOST_REQUIRE(!prefork::init_logging(prefork::log_config{
      .level = prefork::log_level::info, .file = file.string(), .format = prefork::log_format::text}));
  asio::io_context io;
  const prefork::config cfg;
  prefork::worker_context worker(io.get_executor(), cfg, 1, 1);
  prefork::make_testbed_app().on_worker_start(worker);
  prefork::init_logging(prefork::log_config{});  // back to stderr
  std::ifstream in(file);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  fs::remove_all(dir);
  const std::string_view message = "testbed app: fault injection enabled, never use in production";
  BOOST_TEST(text.find(message) != std::string::npos, "log: " << text);
  BOOST_TEST(text.find(message) == text.rfind(message));  // once
  BOOST_TEST(text.find("warn") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(hello_routes_are_kept) {
  harness h;
  const std::string root = h.ask(get("/"));
  BOOST_TEST(status_line(root) == "HTTP/1.1 200 OK");
  BOOST_TEST(body_of(root) == "Hello, world!\n");
  BOOST_TEST(has_line(root, "Content-Type: text/plain; charset=utf-8"));
  BOOST_TEST(body_of(h.ask(get("/healthz"))) == "ok\n");
  BOOST_TEST(status_line(h.ask(get("/nope"))) == "HTTP/1.1 404 Not Found");
  BOOST_TEST(status_line(h.ask(get("/whoami/"))) == "HTTP/1.1 404 Not Found");
  const std::string post = h.ask("POST / HTTP/1.1\r\nContent-Length: 1\r\n\r\nx");
  BOOST_TEST(status_line(post) == "HTTP/1.1 405 Method Not Allowed");
  BOOST_TEST(has_line(post, "Allow: GET, HEAD"));
  const std::string head = h.ask("HEAD / HTTP/1.1\r\n\r\n", true);
  BOOST_TEST(has_line(head, "Content-Length: 14"));
  BOOST_TEST(body_of(head).empty());
}

BOOST_AUTO_TEST_CASE(whoami_answers_worker_pid_and_generation_as_json) {
  harness h;
  const std::string r = h.ask(get("/whoami"));
  BOOST_TEST(status_line(r) == "HTTP/1.1 200 OK");
  BOOST_TEST(has_line(r, "Content-Type: application/json"));
  const boost::json::value v = boost::json::parse(body_of(r));
  const boost::json::object& o = v.as_object();
  BOOST_TEST(o.size() == 3u);
  BOOST_TEST(o.at("worker").to_number<int>() == 7);
  BOOST_TEST(o.at("pid").to_number<long>() == static_cast<long>(::getpid()));
  BOOST_TEST(o.at("generation").to_number<int>() == 3);
  BOOST_TEST(body_of(r) == "{\"worker\":7,\"pid\":" + std::to_string(::getpid()) + ",\"generation\":3}");
  BOOST_TEST(h.worker->requests() == 1u);
}

BOOST_AUTO_TEST_CASE(whoami_twice_on_one_connection_and_head) {
  harness h;
  exchange x{get("/whoami") + get("/whoami"), 2};
  h.start(x);
  h.run();
  BOOST_REQUIRE_EQUAL(x.answers.size(), 2u);
  BOOST_TEST(body_of(x.answers[0]) == body_of(x.answers[1]));
  const std::string head = h.ask("HEAD /whoami HTTP/1.1\r\n\r\n", true);
  BOOST_TEST(status_line(head) == "HTTP/1.1 200 OK");
  BOOST_TEST(has_line(head, "Content-Length: " + std::to_string(body_of(x.answers[0]).size())));
}

BOOST_AUTO_TEST_CASE(sleep_answers_after_the_delay) {
  harness h;
  exchange x{get("/sleep?ms=60")};
  h.start(x);
  h.run();
  BOOST_REQUIRE_EQUAL(x.answers.size(), 1u);
  BOOST_TEST(status_line(x.answers[0]) == "HTTP/1.1 200 OK");
  BOOST_TEST(body_of(x.answers[0]) == "slept 60 ms\n");
  BOOST_TEST(millis(x.elapsed) >= 60);
}

BOOST_AUTO_TEST_CASE(sleep_zero_and_ms_among_other_parameters) {
  harness h;
  BOOST_TEST(body_of(h.ask(get("/sleep?ms=0"))) == "slept 0 ms\n");
  BOOST_TEST(body_of(h.ask(get("/sleep?x=1&ms=5&ms=900"))) == "slept 5 ms\n");  // the first ms
  BOOST_TEST(body_of(h.ask(get("/sleep?ms=007"))) == "slept 7 ms\n");
}

BOOST_AUTO_TEST_CASE(ten_parallel_sleeps_do_not_block_the_worker) {
  harness h;
  std::vector<exchange> xs(10, exchange{get("/sleep?ms=200")});
  const auto start = clock_type::now();
  for (exchange& x : xs) h.start(x);
  h.run();
  const auto total = clock_type::now() - start;
  for (const exchange& x : xs) {
    BOOST_REQUIRE(x.done);
    BOOST_REQUIRE_EQUAL(x.answers.size(), 1u);
    BOOST_TEST(body_of(x.answers[0]) == "slept 200 ms\n");
    BOOST_TEST(millis(x.elapsed) >= 200);
  }
  // Serially they would take 2000 ms: the sleeps overlapped.
  BOOST_TEST(millis(total) < 1500);
  BOOST_TEST(h.worker->requests() == 10u);
}

/// When does a 50 ms timer, started with the request, fire? Late if the loop is blocked.
long timer_delay_during(const std::string& target) {
  harness h;
  exchange x{get(target)};
  h.start(x);
  asio::steady_timer timer(h.io, 50ms);
  const auto start = clock_type::now();
  clock_type::duration fired{};
  timer.async_wait([&](boost::system::error_code) { fired = clock_type::now() - start; });
  h.run();
  BOOST_REQUIRE_EQUAL(x.answers.size(), 1u);
  BOOST_TEST(status_line(x.answers[0]) == "HTTP/1.1 200 OK");
  return millis(fired);
}

BOOST_AUTO_TEST_CASE(burn_blocks_the_loop_and_sleep_does_not) {
  BOOST_TEST(timer_delay_during("/burn?ms=400") >= 300);
  BOOST_TEST(timer_delay_during("/sleep?ms=400") < 300);
}

BOOST_AUTO_TEST_CASE(burn_answers_after_the_delay) {
  harness h;
  exchange x{get("/burn?ms=50")};
  h.start(x);
  h.run();
  BOOST_REQUIRE_EQUAL(x.answers.size(), 1u);
  BOOST_TEST(body_of(x.answers[0]) == "burned 50 ms\n");
  BOOST_TEST(millis(x.elapsed) >= 50);
  BOOST_TEST(body_of(h.ask(get("/burn?ms=0"))) == "burned 0 ms\n");
}

BOOST_AUTO_TEST_CASE(invalid_ms_is_400_with_a_message) {
  for (const std::string path : {"/sleep", "/burn"}) {
    struct bad {
      std::string query;
      std::string message;
    };
    const std::vector<bad> cases{
        {"", "missing query parameter ms: expected an integer 0..60000\n"},
        {"?x=1", "missing query parameter ms: expected an integer 0..60000\n"},
        {"?msx=1", "missing query parameter ms: expected an integer 0..60000\n"},
        {"?ms", "ms: expected an integer 0..60000, got \"\"\n"},
        {"?ms=", "ms: expected an integer 0..60000, got \"\"\n"},
        {"?ms=-1", "ms: expected an integer 0..60000, got \"-1\"\n"},
        {"?ms=abc", "ms: expected an integer 0..60000, got \"abc\"\n"},
        {"?ms=60001", "ms: expected an integer 0..60000, got \"60001\"\n"},
        {"?ms=+5", "ms: expected an integer 0..60000, got \"+5\"\n"},
        {"?ms=1.5", "ms: expected an integer 0..60000, got \"1.5\"\n"},
        {"?ms=5x", "ms: expected an integer 0..60000, got \"5x\"\n"},
        {"?ms=99999999999999999999999", "ms: expected an integer 0..60000, got \"99999999999999999999999\"\n"},
        {"?ms=" + std::string(40, '9'), "ms: expected an integer 0..60000, got \"" + std::string(32, '9') + "...\"\n"},
    };
    for (const bad& c : cases) {
      BOOST_TEST_CONTEXT(path << c.query) {
        harness h;
        const std::string r = h.ask(get(path + c.query));
        BOOST_TEST(status_line(r) == "HTTP/1.1 400 Bad Request");
        BOOST_TEST(body_of(r) == c.message);
        BOOST_TEST(!has_line(r, "Connection: close"));  // a routing answer: the connection goes on
      }
    }
  }
}

BOOST_AUTO_TEST_CASE(the_largest_ms_is_accepted) {
  // 60000 is valid: no 400 comes back at once (the sleep itself is not awaited).
  harness h;
  exchange x{get("/sleep?ms=60000")};
  h.start(x);
  h.io.run_for(150ms);
  BOOST_TEST(!x.done);
  BOOST_TEST(x.answers.empty());
  BOOST_TEST(h.servers_done == 0);
}

BOOST_AUTO_TEST_CASE(post_echo_sends_the_body_back) {
  harness h;
  const std::string body = "binary\0\x01\xff body"s;
  const std::string r =
      h.ask("POST /echo HTTP/1.1\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body);
  BOOST_TEST(status_line(r) == "HTTP/1.1 200 OK");
  BOOST_TEST(has_line(r, "Content-Type: application/octet-stream"));
  BOOST_TEST(body_of(r) == body);
  const std::string big(4096, 'z');
  BOOST_TEST(body_of(h.ask("POST /echo HTTP/1.1\r\nContent-Length: 4096\r\n\r\n" + big)) == big);
  const std::string empty = h.ask("POST /echo HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
  BOOST_TEST(has_line(empty, "Content-Length: 0"));
  BOOST_TEST(body_of(empty).empty());
  const std::string chunked =
      h.ask("POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n");
  BOOST_TEST(body_of(chunked) == "abcde");
}

BOOST_AUTO_TEST_CASE(post_echo_over_the_body_limit_is_413) {
  harness h;
  exchange x{"POST /echo HTTP/1.1\r\nContent-Length: 4097\r\n\r\n"};
  h.start(x);
  h.run();
  BOOST_REQUIRE_EQUAL(x.answers.size(), 1u);
  BOOST_TEST(status_line(x.answers[0]) == "HTTP/1.1 413 Payload Too Large");
}

BOOST_AUTO_TEST_CASE(other_methods_are_405_with_the_proper_allow) {
  struct expectation {
    std::string request;
    std::string allow;
    bool head = false;
  };
  const std::vector<expectation> cases{
      {"POST /whoami HTTP/1.1\r\nContent-Length: 0\r\n\r\n", "Allow: GET, HEAD"},
      {"PUT /sleep?ms=1 HTTP/1.1\r\nContent-Length: 0\r\n\r\n", "Allow: GET, HEAD"},
      {"DELETE /burn?ms=1 HTTP/1.1\r\n\r\n", "Allow: GET, HEAD"},
      {"OPTIONS /sleep HTTP/1.1\r\n\r\n", "Allow: GET, HEAD"},
      {"HEAD /crash HTTP/1.1\r\n\r\n", "Allow: GET", true},
      {"POST /crash HTTP/1.1\r\nContent-Length: 0\r\n\r\n", "Allow: GET"},
      {"HEAD /hang HTTP/1.1\r\n\r\n", "Allow: GET", true},
      {"DELETE /hang HTTP/1.1\r\n\r\n", "Allow: GET"},
      {"GET /echo HTTP/1.1\r\n\r\n", "Allow: POST"},
      {"HEAD /echo HTTP/1.1\r\n\r\n", "Allow: POST", true},
      {"PATCH /echo HTTP/1.1\r\nContent-Length: 1\r\n\r\nx", "Allow: POST"},
  };
  for (const expectation& c : cases) {
    BOOST_TEST_CONTEXT(c.request) {
      harness h;
      const std::string r = h.ask(c.request, c.head);
      BOOST_TEST(status_line(r) == "HTTP/1.1 405 Method Not Allowed");
      BOOST_TEST(has_line(r, c.allow));
      if (!c.head) BOOST_TEST(body_of(r) == "Method Not Allowed\n");
    }
  }
}

BOOST_AUTO_TEST_CASE(head_sleep_and_burn_do_the_work_without_a_body) {
  harness h;
  const std::string sleep = h.ask("HEAD /sleep?ms=20 HTTP/1.1\r\n\r\n", true);
  BOOST_TEST(status_line(sleep) == "HTTP/1.1 200 OK");
  BOOST_TEST(has_line(sleep, "Content-Length: 12"));  // "slept 20 ms\n"
  BOOST_TEST(body_of(sleep).empty());
  const std::string burn = h.ask("HEAD /burn?ms=1 HTTP/1.1\r\n\r\n", true);
  BOOST_TEST(has_line(burn, "Content-Length: 12"));  // "burned 1 ms\n"
}

BOOST_AUTO_TEST_CASE(sleep_answered_while_draining_says_connection_close) {
  harness h;
  exchange x{get("/sleep?ms=100")};
  h.start(x);
  asio::steady_timer timer(h.io, 20ms);
  timer.async_wait([&](boost::system::error_code) { prefork::detail::worker_drain::begin(*h.worker); });
  h.run();
  BOOST_REQUIRE_EQUAL(x.answers.size(), 1u);
  BOOST_TEST(body_of(x.answers[0]) == "slept 100 ms\n");
  BOOST_TEST(has_line(x.answers[0], "Connection: close"));
}

BOOST_AUTO_TEST_CASE(sleep_then_pipelined_request_keeps_the_order) {
  harness h;
  exchange x{get("/sleep?ms=30") + get("/whoami") + get("/sleep?ms=bad"), 3};
  h.start(x);
  h.run();
  BOOST_REQUIRE_EQUAL(x.answers.size(), 3u);
  BOOST_TEST(body_of(x.answers[0]) == "slept 30 ms\n");
  BOOST_TEST(has_line(x.answers[1], "Content-Type: application/json"));
  BOOST_TEST(status_line(x.answers[2]) == "HTTP/1.1 400 Bad Request");
}

BOOST_AUTO_TEST_SUITE_END()
