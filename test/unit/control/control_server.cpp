#include "control/control_server.hpp"
#include "unit_support/preconditions.hpp"

#include "prefork/log.hpp"
#include "unit_support/temp_dir.hpp"
#include "unit_support/unix_listener.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/test/unit_test.hpp>

#include <fcntl.h>
#include <grp.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

// g++ 12 at -O2 reports a false -Wmismatched-new-delete on Asio's awaitable frames (the
// promise type allocates and frees them) once it inlines these test coroutines.
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ == 12
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

namespace {

namespace asio = boost::asio;
namespace json = boost::json;
using namespace prefork::detail;
using namespace std::chrono_literals;
using namespace asio::experimental::awaitable_operators;
using unix_socket = asio::local::stream_protocol::socket;
using steady = std::chrono::steady_clock;

using prefork::unit_support::temp_dir;

using prefork::unit_support::open_unix_listener;

// Answers like a small master with workers 1 and 2, and records every call.
class fake_target final : public control_target {
 public:
  json::object status_value{
      {"pid", 1234},
      {"version", "0.1.0"},
      {"uptime_s", 12.5},
      {"generation", 1},
      {"state", "running"},
      {"workers", {{"desired", 2}, {"ready", 2}, {"starting", 0}, {"draining", 0}}},
      {"listeners", json::array{json::object{{"bind", "unix:app.sock"}, {"address", "unix:/tmp/app.sock"}}}},
      {"dispatch", "least-connections"}};
  json::array workers_value{json::object{{"id", 1},
                                         {"pid", 1001},
                                         {"generation", 1},
                                         {"state", "ready"},
                                         {"active", 0},
                                         {"served", 5},
                                         {"started_at", "2026-01-01T00:00:00Z"},
                                         {"last_heartbeat_ms", 120},
                                         {"rss_bytes", 5242880}},
                            json::object{{"id", 2},
                                         {"pid", 1002},
                                         {"generation", 1},
                                         {"state", "paused"},
                                         {"active", 3},
                                         {"served", 17},
                                         {"started_at", "2026-01-01T00:00:01Z"},
                                         {"last_heartbeat_ms", 1500},
                                         {"rss_bytes", 6291456}}};
  json::object stats_value{{"accepted", 10}, {"dispatched", 10}, {"lost", 0}, {"requests", 22}};
  json::object config_value{{"workers", 2}, {"control", "ctl.sock"}};

  std::vector<std::string> calls;
  std::uint64_t generation = 1;
  std::chrono::milliseconds reload_delay{0};
  bool reload_fails = false;
  bool reload_in_progress = false;
  bool throw_on_stats = false;
  std::optional<stop_kind> stopped;
  std::function<void()> on_stop;

  json::object status() override {
    calls.push_back("status");
    return status_value;
  }
  json::array workers() override {
    calls.push_back("workers");
    return workers_value;
  }
  json::object stats() override {
    calls.push_back("stats");
    if (throw_on_stats) throw std::runtime_error("stats exploded");
    return stats_value;
  }
  json::object effective_config() override {
    calls.push_back("config");
    return config_value;
  }
  std::uint64_t scale(std::uint64_t desired) override {
    calls.push_back("scale " + std::to_string(desired));
    return desired;
  }
  asio::awaitable<prefork::result<std::uint64_t>> reload(bool wait) override {
    calls.push_back(wait ? "reload wait" : "reload");
    if (wait && reload_delay.count() > 0) {
      reload_in_progress = true;
      asio::steady_timer timer(co_await asio::this_coro::executor, reload_delay);
      co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
      reload_in_progress = false;
    }
    if (reload_fails)
      co_return prefork::failure{prefork::errc::bad_request, "reload failed: the new generation did not start"};
    co_return ++generation;
  }
  void stop(stop_kind kind) override {
    calls.push_back(kind == stop_kind::graceful ? "stop graceful" : "stop fast");
    if (on_stop) on_stop();
    stopped = kind;
  }
  prefork::result<std::int64_t> kill_worker(std::int64_t id, kill_signal signal) override {
    calls.push_back("kill_worker " + std::to_string(id) + (signal == kill_signal::term ? " TERM" : " KILL"));
    if (id != 1 && id != 2) return prefork::failure{prefork::errc::not_found, "no worker " + std::to_string(id)};
    return 1000 + id;
  }
  prefork::result<void> pause_worker(std::int64_t id) override {
    calls.push_back("pause_worker " + std::to_string(id));
    if (id != 1 && id != 2) return prefork::failure{prefork::errc::not_found, "no worker " + std::to_string(id)};
    return {};
  }
  prefork::result<void> resume_worker(std::int64_t id) override {
    calls.push_back("resume_worker " + std::to_string(id));
    if (id != 1 && id != 2) return prefork::failure{prefork::errc::not_found, "no worker " + std::to_string(id)};
    return {};
  }
  prefork::result<void> reopen_logs() override {
    calls.push_back("reopen_logs");
    return {};
  }
};

// A fresh io_context, a fake target and a started server on a socket in a temp dir. On
// destruction it closes the server and checks that every coroutine has finished.
struct fixture {
  explicit fixture(control_server_options options = {}, mode_t mode = 0600) : path(dir / "ctl.sock") {
    server = std::make_unique<control_server>(io.get_executor(), open_unix_listener(path, mode), target, options);
    server->start();
  }
  ~fixture() {
    server.reset();
    io.restart();
    io.run_for(2s);
    BOOST_TEST(io.stopped(), "coroutines still pending after close()");
  }

  temp_dir dir;
  asio::io_context io;
  fake_target target;
  std::string path;
  std::unique_ptr<control_server> server;
};

// Runs `body` on the fixture's io_context; fails with "did not finish" after `limit`.
void run(fixture& f, asio::awaitable<void> body, std::chrono::milliseconds limit = 10s) {
  bool done = false;
  std::exception_ptr failure;
  asio::co_spawn(f.io, std::move(body), [&](std::exception_ptr e) {
    failure = e;
    done = true;
    f.io.stop();
  });
  f.io.restart();
  f.io.run_for(limit);
  BOOST_REQUIRE_MESSAGE(done, "did not finish");
  if (failure) std::rethrow_exception(failure);
}

// A test client on the fixture's io_context.
struct peer {
  explicit peer(asio::io_context& io) : socket(io) {}
  unix_socket socket;
  std::string buffer;
  int lines_read = 0;
};

asio::awaitable<bool> connect(peer* p, std::string path) {
  auto [ec] = co_await p->socket.async_connect(asio::local::stream_protocol::endpoint(path),
                                               asio::as_tuple(asio::use_awaitable));
  co_return !ec;
}

asio::awaitable<boost::system::error_code> send(peer* p, std::string bytes) {
  auto [ec, written] = co_await asio::async_write(p->socket, asio::buffer(bytes), asio::as_tuple(asio::use_awaitable));
  co_return ec;
}

// The next line without its newline; "<eof>" once the server closed, "<timeout>" after `timeout`.
asio::awaitable<std::string> read_line(peer* p, std::chrono::milliseconds timeout = 3s) {
  asio::steady_timer timer(p->socket.get_executor(), timeout);
  auto outcome = co_await (
      asio::async_read_until(p->socket, asio::dynamic_buffer(p->buffer), '\n', asio::as_tuple(asio::use_awaitable)) ||
      timer.async_wait(asio::as_tuple(asio::use_awaitable)));
  if (outcome.index() == 1) co_return "<timeout>";
  auto [ec, length] = std::get<0>(outcome);
  if (ec == asio::error::eof || ec == asio::error::connection_reset) co_return "<eof>";
  if (ec) co_return "<error: " + ec.message() + ">";
  std::string line = p->buffer.substr(0, length - 1);
  p->buffer.erase(0, length);
  ++p->lines_read;
  co_return line;
}

asio::awaitable<std::string> request(peer* p, std::string line) {
  auto ec = co_await send(p, line + "\n");
  if (ec) co_return "<send failed: " + ec.message() + ">";
  co_return co_await read_line(p);
}

asio::awaitable<void> pause_for(std::chrono::milliseconds duration) {
  asio::steady_timer timer(co_await asio::this_coro::executor, duration);
  co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
}

// Polls `condition` every 5 ms; false if it is still false after `limit`.
asio::awaitable<bool> eventually(std::function<bool()> condition, std::chrono::milliseconds limit = 2s) {
  const auto deadline = steady::now() + limit;
  while (!condition()) {
    if (steady::now() >= deadline) co_return false;
    co_await pause_for(5ms);
  }
  co_return true;
}

json::value parse_reply(const std::string& line) {
  boost::system::error_code ec;
  auto value = json::parse(line, ec);
  BOOST_REQUIRE_MESSAGE(!ec && value.is_object(), "not a reply: " << line);
  return value;
}

// The `result` of an ok reply (failing the test for anything else).
json::value result_of(const std::string& line) {
  auto reply = parse_reply(line);
  BOOST_REQUIRE_MESSAGE(reply.as_object().contains("ok") && reply.at("ok") == true, "not ok: " << line);
  return reply.at("result");
}

// The error code of an error reply, and its message in `message` if given.
std::string error_code_of(const std::string& line, std::string* message = nullptr) {
  auto reply = parse_reply(line);
  BOOST_REQUIRE_MESSAGE(reply.at("ok") == false, "not an error: " << line);
  if (message) *message = std::string(reply.at("error").at("message").as_string());
  return std::string(reply.at("error").at("code").as_string());
}

const std::string pong = R"({"ok":true,"result":"pong"})";

// --- test bodies (coroutines are free functions: STYLE 11) ------------------------------

asio::awaitable<void> every_command_body(fixture* f) {
  peer p(f->io);
  BOOST_REQUIRE(co_await connect(&p, f->path));
  auto line = co_await request(&p, R"({"cmd":"ping"})");
  BOOST_TEST(line == pong);
  line = co_await request(&p, R"({"cmd":"status"})");
  BOOST_TEST(result_of(line) == json::value(f->target.status_value));
  line = co_await request(&p, R"({"cmd":"workers"})");
  BOOST_TEST(result_of(line) == json::value(f->target.workers_value));
  line = co_await request(&p, R"({"cmd":"stats"})");
  BOOST_TEST(result_of(line) == json::value(f->target.stats_value));
  line = co_await request(&p, R"({"cmd":"config"})");
  BOOST_TEST(result_of(line) == json::value(f->target.config_value));
  line = co_await request(&p, R"({"cmd":"scale","workers":4})");
  BOOST_TEST(line == R"({"ok":true,"result":{"desired":4}})");
  line = co_await request(&p, R"({"cmd":"reload"})");
  BOOST_TEST(line == R"({"ok":true,"result":{"generation":2}})");
  line = co_await request(&p, R"({"cmd":"reload","wait":true})");
  BOOST_TEST(line == R"({"ok":true,"result":{"generation":3}})");
  line = co_await request(&p, R"({"cmd":"kill_worker","id":1})");
  BOOST_TEST(line == R"({"ok":true,"result":{"pid":1001}})");
  line = co_await request(&p, R"({"cmd":"kill_worker","id":2,"signal":"KILL"})");
  BOOST_TEST(line == R"({"ok":true,"result":{"pid":1002}})");
  line = co_await request(&p, R"({"cmd":"pause_worker","id":1})");
  BOOST_TEST(line == R"({"ok":true,"result":{}})");
  line = co_await request(&p, R"({"cmd":"resume_worker","id":1})");
  BOOST_TEST(line == R"({"ok":true,"result":{}})");
  line = co_await request(&p, R"({"cmd":"reopen_logs"})");
  BOOST_TEST(line == R"({"ok":true,"result":{}})");
  BOOST_TEST(!f->target.stopped.has_value());
  line = co_await request(&p, R"({"cmd":"stop","graceful":false})");
  BOOST_TEST(line == R"({"ok":true,"result":{}})");
  BOOST_TEST((f->target.stopped == stop_kind::fast));
  line = co_await request(&p, R"({"cmd":"stop"})");
  BOOST_TEST(line == R"({"ok":true,"result":{}})");
  BOOST_TEST((f->target.stopped == stop_kind::graceful));
  const std::vector<std::string> expected{"status",
                                          "workers",
                                          "stats",
                                          "config",
                                          "scale 4",
                                          "reload",
                                          "reload wait",
                                          "kill_worker 1 TERM",
                                          "kill_worker 2 KILL",
                                          "pause_worker 1",
                                          "resume_worker 1",
                                          "reopen_logs",
                                          "stop fast",
                                          "stop graceful"};
  BOOST_TEST(f->target.calls == expected, boost::test_tools::per_element());
}

asio::awaitable<void> not_found_body(fixture* f) {
  peer p(f->io);
  BOOST_REQUIRE(co_await connect(&p, f->path));
  for (std::string command :
       {R"({"cmd":"kill_worker","id":9})", R"({"cmd":"pause_worker","id":9})", R"({"cmd":"resume_worker","id":9})"}) {
    std::string message;
    auto line = co_await request(&p, command);
    BOOST_TEST(error_code_of(line, &message) == "not_found", command);
    BOOST_TEST(message == "no worker 9");
    line = co_await request(&p, R"({"cmd":"ping"})");
    BOOST_TEST(line == pong);
  }
  f->target.reload_fails = true;
  auto line = co_await request(&p, R"({"cmd":"reload","wait":true})");
  std::string message;
  BOOST_TEST(error_code_of(line, &message) == "bad_request");
  BOOST_TEST(message == "reload failed: the new generation did not start");
  line = co_await request(&p, R"({"cmd":"ping"})");
  BOOST_TEST(line == pong);
}

asio::awaitable<void> bad_requests_body(fixture* f) {
  peer p(f->io);
  BOOST_REQUIRE(co_await connect(&p, f->path));
  const std::vector<std::pair<std::string, std::string>> cases{
      {"this is not json", "bad_json"},
      {"", "bad_json"},
      {R"({"cmd":"ping")", "bad_json"},
      {"[1,2,3]", "bad_request"},
      {"{}", "bad_request"},
      {R"({"cmd":42})", "bad_request"},
      {R"({"cmd":"scale"})", "bad_request"},
      {R"({"cmd":"scale","workers":0})", "bad_request"},
      {R"({"cmd":"scale","workers":"4"})", "bad_request"},
      {R"({"cmd":"reload","wait":"yes"})", "bad_request"},
      {R"({"cmd":"stop","graceful":"no"})", "bad_request"},
      {R"({"cmd":"kill_worker"})", "bad_request"},
      {R"({"cmd":"kill_worker","id":1,"signal":"HUP"})", "bad_request"},
      {R"({"cmd":"pause_worker","id":"one"})", "bad_request"},
      {R"({"cmd":"launch_missiles"})", "unknown_command"},
  };
  for (const auto& [text, code] : cases) {
    std::string message;
    auto line = co_await request(&p, text);
    BOOST_TEST(error_code_of(line, &message) == code, text << " -> " << line);
    BOOST_TEST(!message.empty());
    line = co_await request(&p, R"({"cmd":"ping"})");
    BOOST_TEST(line == pong, "after " << text);
  }
  std::string message;
  auto line = co_await request(&p, R"({"cmd":"scale","workers":0})");
  BOOST_TEST(error_code_of(line, &message) == "bad_request");
  BOOST_TEST(message == "workers must be an integer ≥ 1");
  BOOST_TEST(f->target.calls.empty(), "a bad request reached the target");
  BOOST_TEST(!f->target.stopped.has_value());
}

asio::awaitable<void> too_large_body(fixture* f) {
  peer p(f->io);
  BOOST_REQUIRE(co_await connect(&p, f->path));
  // 70 KiB in one write, then ping on the same connection.
  std::string huge = R"({"cmd":"ping","pad":")" + std::string(70 * 1024, 'x') + "\"}";
  std::string message;
  auto line = co_await request(&p, huge);
  BOOST_TEST(error_code_of(line, &message) == "too_large");
  BOOST_TEST(message.find("65536") != std::string::npos, message);
  line = co_await request(&p, R"({"cmd":"ping"})");
  BOOST_TEST(line == pong);
  // The same in small pieces with pauses: reported once, the rest discarded.
  for (int i = 0; i < 20; ++i) {
    auto ec = co_await send(&p, std::string(4096, 'y'));
    BOOST_REQUIRE(!ec);
    if (i % 5 == 0) co_await pause_for(2ms);
  }
  co_await send(&p, "tail of the long line\n{\"cmd\":\"ping\"}\n");
  line = co_await read_line(&p);
  BOOST_TEST(error_code_of(line) == "too_large");
  line = co_await read_line(&p);
  BOOST_TEST(line == pong);
  // Exactly 64 KiB is still a request.
  std::string exact = R"({"cmd":"ping"})";
  exact.resize(max_control_line, ' ');
  line = co_await request(&p, exact);
  BOOST_TEST(line == pong);
  line = co_await request(&p, exact + " ");
  BOOST_TEST(error_code_of(line) == "too_large");
  line = co_await request(&p, R"({"cmd":"ping"})");
  BOOST_TEST(line == pong);
}

asio::awaitable<void> pipelined_body(fixture* f) {
  peer p(f->io);
  BOOST_REQUIRE(co_await connect(&p, f->path));
  std::string batch;
  for (int i = 0; i < 100; ++i) batch += "{\"cmd\":\"ping\"}\n";
  batch += "garbage\n{\"cmd\":\"scale\",\"workers\":3}\n{\"cmd\":\"nope\"}\r\n{\"cmd\":\"ping\"}\r\n";
  BOOST_REQUIRE(!co_await send(&p, batch));
  for (int i = 0; i < 100; ++i) {
    auto line = co_await read_line(&p);
    BOOST_REQUIRE_EQUAL(line, pong);
  }
  auto line = co_await read_line(&p);
  BOOST_TEST(error_code_of(line) == "bad_json");
  line = co_await read_line(&p);
  BOOST_TEST(line == R"({"ok":true,"result":{"desired":3}})");
  line = co_await read_line(&p);
  BOOST_TEST(error_code_of(line) == "unknown_command");
  line = co_await read_line(&p);
  BOOST_TEST(line == pong);
}

asio::awaitable<void> reload_wait_order_body(fixture* f) {
  f->target.reload_delay = 300ms;
  peer a(f->io);
  peer b(f->io);
  BOOST_REQUIRE(co_await connect(&a, f->path));
  BOOST_REQUIRE(co_await connect(&b, f->path));
  const auto started = steady::now();
  BOOST_REQUIRE(!co_await send(&a, "{\"cmd\":\"reload\",\"wait\":true}\n{\"cmd\":\"ping\"}\n"));
  BOOST_REQUIRE(co_await eventually([f] { return f->target.reload_in_progress; }));
  // Another connection is not held up by the wait.
  auto line = co_await request(&b, R"({"cmd":"ping"})");
  BOOST_TEST(line == pong);
  BOOST_TEST(f->target.reload_in_progress, "b's ping waited for a's reload");
  // a's replies come in request order, the ping's after the reload's.
  line = co_await read_line(&a);
  BOOST_TEST(line == R"({"ok":true,"result":{"generation":2}})");
  BOOST_TEST((steady::now() - started >= 250ms));
  line = co_await read_line(&a);
  BOOST_TEST(line == pong);
}

asio::awaitable<void> close_during_reload_body(fixture* f) {
  f->target.reload_delay = 200ms;
  peer a(f->io);
  BOOST_REQUIRE(co_await connect(&a, f->path));
  BOOST_REQUIRE(!co_await send(&a, "{\"cmd\":\"reload\",\"wait\":true}\n"));
  BOOST_REQUIRE(co_await eventually([f] { return f->target.reload_in_progress; }));
  f->server->close();
  auto line = co_await read_line(&a);
  BOOST_TEST(line == "<eof>");
  BOOST_REQUIRE(co_await eventually([f] { return !f->target.reload_in_progress; }));
  co_await pause_for(20ms);
  BOOST_TEST(f->target.calls == std::vector<std::string>{"reload wait"});
}

asio::awaitable<void> stop_after_reply_body(fixture* f) {
  peer p(f->io);
  BOOST_REQUIRE(co_await connect(&p, f->path));
  const std::string reply = R"({"ok":true,"result":{}})";
  bool reply_was_out = false;
  peer* client = &p;
  f->target.on_stop = [client, &reply_was_out, reply] {
    // The reply is in the client's socket, or already read from it (the reactor reads
    // before the client's handler runs).
    char peeked[64] = {};
    ssize_t n = ::recv(client->socket.native_handle(), peeked, sizeof peeked - 1, MSG_PEEK | MSG_DONTWAIT);
    const std::string line = reply + "\n";
    reply_was_out = client->buffer == line || client->lines_read == 1 ||
                    (n > 0 && std::string(peeked, static_cast<std::size_t>(n)) == line);
  };
  auto line = co_await request(&p, R"({"cmd":"stop"})");
  BOOST_TEST(line == reply);
  BOOST_TEST((f->target.stopped == stop_kind::graceful));
  BOOST_TEST(reply_was_out, "stop() ran before the reply was written");
  f->target.on_stop = nullptr;

  // A client that hangs up right after asking still stops the master.
  f->target.stopped.reset();
  peer q(f->io);
  BOOST_REQUIRE(co_await connect(&q, f->path));
  BOOST_REQUIRE(!co_await send(&q, "{\"cmd\":\"stop\",\"graceful\":false}\n"));
  q.socket.close();
  BOOST_TEST(co_await eventually([f] { return f->target.stopped.has_value(); }));
  BOOST_TEST((f->target.stopped == stop_kind::fast));
}

asio::awaitable<void> idle_timeout_body(fixture* f) {
  // Silent: closed after about idle_timeout.
  peer p(f->io);
  BOOST_REQUIRE(co_await connect(&p, f->path));
  auto started = steady::now();
  auto line = co_await read_line(&p, 3s);
  BOOST_TEST(line == "<eof>");
  auto waited = steady::now() - started;
  BOOST_TEST((waited >= 100ms));
  BOOST_TEST((waited < 2s));

  // Trickling bytes of a request does not extend the deadline.
  peer q(f->io);
  BOOST_REQUIRE(co_await connect(&q, f->path));
  started = steady::now();
  (void)co_await send(&q, "{");
  for (int i = 0; i < 20 && steady::now() - started < 1s; ++i) {
    co_await pause_for(30ms);
    if (co_await send(&q, " ")) break;  // the server hung up
  }
  line = co_await read_line(&q, 3s);
  BOOST_TEST(line == "<eof>");
  BOOST_TEST((steady::now() - started < 2s));

  // An active client is not idle: each reply restarts the deadline.
  peer r(f->io);
  BOOST_REQUIRE(co_await connect(&r, f->path));
  for (int i = 0; i < 6; ++i) {
    co_await pause_for(80ms);
    line = co_await request(&r, R"({"cmd":"ping"})");
    BOOST_TEST(line == pong, "ping " << i);
  }
  BOOST_TEST(co_await eventually([f] { return f->server->connection_count() == 1; }));
}

asio::awaitable<void> connection_cap_body(fixture* f) {
  peer a(f->io);
  peer b(f->io);
  peer c(f->io);
  BOOST_REQUIRE(co_await connect(&a, f->path));
  auto line = co_await request(&a, R"({"cmd":"ping"})");
  BOOST_TEST(line == pong);
  BOOST_REQUIRE(co_await connect(&b, f->path));
  line = co_await request(&b, R"({"cmd":"ping"})");
  BOOST_TEST(line == pong);
  BOOST_REQUIRE(co_await connect(&c, f->path));
  line = co_await read_line(&c);
  std::string message;
  BOOST_TEST(error_code_of(line, &message) == "bad_request");
  BOOST_TEST(message == "too many control connections");
  line = co_await read_line(&c);
  BOOST_TEST(line == "<eof>");
  // The served ones go on; once one leaves, a newcomer is served.
  line = co_await request(&b, R"({"cmd":"ping"})");
  BOOST_TEST(line == pong);
  a.socket.close();
  BOOST_REQUIRE(co_await eventually([f] { return f->server->connection_count() == 1; }));
  peer d(f->io);
  BOOST_REQUIRE(co_await connect(&d, f->path));
  line = co_await request(&d, R"({"cmd":"ping"})");
  BOOST_TEST(line == pong);
}

asio::awaitable<void> non_reading_client_body(fixture* f) {
  peer p(f->io);
  BOOST_REQUIRE(co_await connect(&p, f->path));
  p.socket.non_blocking(true);
  std::string batch;
  for (int i = 0; i < 100; ++i) batch += "{\"cmd\":\"ping\"}\n";
  const auto deadline = steady::now() + 5s;
  std::size_t sent = 0;
  bool hung_up = false;
  while (steady::now() < deadline && !hung_up) {
    boost::system::error_code ec;
    sent += p.socket.write_some(asio::buffer(batch), ec);
    if (ec == asio::error::would_block || ec == asio::error::try_again)
      co_await pause_for(10ms);
    else if (ec)
      hung_up = true;
    if (f->server->connection_count() == 0) hung_up = true;
  }
  BOOST_TEST(hung_up, "the server kept a client that never reads (" << sent << " bytes sent)");
  BOOST_TEST(co_await eventually([f] { return f->server->connection_count() == 0; }));
  // Service goes on.
  peer q(f->io);
  BOOST_REQUIRE(co_await connect(&q, f->path));
  auto line = co_await request(&q, R"({"cmd":"ping"})");
  BOOST_TEST(line == pong);
}

asio::awaitable<void> close_body(fixture* f) {
  peer a(f->io);
  peer idle(f->io);
  BOOST_REQUIRE(co_await connect(&a, f->path));
  BOOST_REQUIRE(co_await connect(&idle, f->path));
  auto line = co_await request(&a, R"({"cmd":"ping"})");
  BOOST_TEST(line == pong);
  BOOST_REQUIRE(co_await eventually([f] { return f->server->connection_count() == 2; }));
  f->server->close();
  f->server->close();  // idempotent
  line = co_await read_line(&a);
  BOOST_TEST(line == "<eof>");
  line = co_await read_line(&idle);
  BOOST_TEST(line == "<eof>");
  BOOST_TEST(co_await eventually([f] { return f->server->connection_count() == 0; }));
  peer late(f->io);
  BOOST_TEST(!co_await connect(&late, f->path), "connected after close()");
  f->server->start();  // does nothing after close()
  peer later(f->io);
  BOOST_TEST(!co_await connect(&later, f->path));
}

asio::awaitable<void> target_exception_body(fixture* f) {
  f->target.throw_on_stats = true;
  peer p(f->io);
  BOOST_REQUIRE(co_await connect(&p, f->path));
  auto line = co_await request(&p, R"({"cmd":"stats"})");
  BOOST_TEST(line == "<eof>");
  BOOST_TEST(co_await eventually([f] { return f->server->connection_count() == 0; }));
  peer q(f->io);
  BOOST_REQUIRE(co_await connect(&q, f->path));
  line = co_await request(&q, R"({"cmd":"ping"})");
  BOOST_TEST(line == pong);
}

asio::awaitable<void> hang_up_mid_line_body(fixture* f) {
  for (int i = 0; i < 10; ++i) {
    peer p(f->io);
    BOOST_REQUIRE(co_await connect(&p, f->path));
    (void)co_await send(&p, "{\"cmd\":\"pi");
    p.socket.close();
  }
  BOOST_TEST(co_await eventually([f] { return f->server->connection_count() == 0; }));
  peer q(f->io);
  BOOST_REQUIRE(co_await connect(&q, f->path));
  auto line = co_await request(&q, R"({"cmd":"ping"})");
  BOOST_TEST(line == pong);
}

// Forked child: becomes nobody, connects, and reads until the server closes. Exit 0 when
// it read a forbidden error line and then EOF.
[[noreturn]] void connect_as_nobody(const char* path) {
  if (::setgroups(0, nullptr) != 0 || ::setgid(65534) != 0 || ::setuid(65534) != 0) ::_exit(10);
  int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::strncpy(address.sun_path, path, sizeof address.sun_path - 1);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) ::_exit(11);
  timeval limit{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
  char received[1024];
  std::size_t have = 0;
  ssize_t n = 0;
  while (have < sizeof received - 1 && (n = ::read(fd, received + have, sizeof received - 1 - have)) > 0)
    have += static_cast<std::size_t>(n);
  received[have] = '\0';
  if (n < 0) ::_exit(12);  // no EOF: the connection was not closed
  if (std::strstr(received, R"({"ok":false,"error":{"code":"forbidden")") != received) ::_exit(13);
  if (std::strchr(received, '\n') != received + have - 1) ::_exit(14);  // exactly one line
  ::_exit(0);
}

asio::awaitable<void> wait_for_child(pid_t child, int* status) {
  const auto deadline = steady::now() + 8s;
  while (steady::now() < deadline) {
    if (::waitpid(child, status, WNOHANG) == child) co_return;
    co_await pause_for(10ms);
  }
  ::kill(child, SIGKILL);
  ::waitpid(child, status, 0);
  BOOST_ERROR("the child did not finish");
}

}  // namespace

BOOST_AUTO_TEST_SUITE(control_server)

BOOST_AUTO_TEST_CASE(every_command) {
  fixture f;
  run(f, every_command_body(&f));
}

BOOST_AUTO_TEST_CASE(not_found_and_target_errors) {
  fixture f;
  run(f, not_found_body(&f));
}

BOOST_AUTO_TEST_CASE(bad_requests_keep_the_connection) {
  fixture f;
  run(f, bad_requests_body(&f));
}

BOOST_AUTO_TEST_CASE(too_large_then_ping) {
  fixture f;
  run(f, too_large_body(&f));
}

BOOST_AUTO_TEST_CASE(pipelined_requests_answered_in_order) {
  fixture f;
  run(f, pipelined_body(&f));
}

BOOST_AUTO_TEST_CASE(reload_wait_delays_only_its_connection) {
  fixture f;
  run(f, reload_wait_order_body(&f));
}

BOOST_AUTO_TEST_CASE(close_during_reload_wait) {
  fixture f;
  run(f, close_during_reload_body(&f));
}

BOOST_AUTO_TEST_CASE(stop_is_called_after_its_reply) {
  fixture f;
  run(f, stop_after_reply_body(&f));
}

BOOST_AUTO_TEST_CASE(idle_connections_are_closed) {
  control_server_options options;
  options.idle_timeout = 150ms;
  fixture f(options);
  run(f, idle_timeout_body(&f));
}

BOOST_AUTO_TEST_CASE(connection_cap) {
  control_server_options options;
  options.max_connections = 2;
  fixture f(options);
  run(f, connection_cap_body(&f));
}

BOOST_AUTO_TEST_CASE(client_that_never_reads_is_dropped) {
  control_server_options options;
  options.write_timeout = 100ms;
  fixture f(options);
  run(f, non_reading_client_body(&f));
}

BOOST_AUTO_TEST_CASE(close_stops_accepting_and_closes_clients) {
  fixture f;
  run(f, close_body(&f));
}

BOOST_AUTO_TEST_CASE(target_exception_closes_only_that_connection) {
  fixture f;
  run(f, target_exception_body(&f));
}

BOOST_AUTO_TEST_CASE(clients_hanging_up_mid_line) {
  fixture f;
  run(f, hang_up_mid_line_body(&f));
}

BOOST_AUTO_TEST_CASE(foreign_user_is_forbidden, *boost::unit_test::precondition(prefork::unit_support::running_as_root{
                                                    "setuid to another user"})) {
  temp_dir logs;
  prefork::log_config logging;
  logging.file = logs / "master.log";
  BOOST_REQUIRE(!prefork::init_logging(logging));
  {
    fixture f({}, 0666);
    BOOST_REQUIRE(::chmod(f.dir.path.c_str(), 0755) == 0);  // nobody must reach the socket file
    pid_t child = ::fork();
    BOOST_REQUIRE(child >= 0);
    if (child == 0) connect_as_nobody(f.path.c_str());
    int status = 0;
    run(f, wait_for_child(child, &status));
    BOOST_TEST(WIFEXITED(status));
    BOOST_TEST(WEXITSTATUS(status) == 0, "child exit "
                                             << WEXITSTATUS(status)
                                             << " (11 connect, 12 not closed, 13 no forbidden line, 14 not one line)");
    BOOST_TEST(f.target.calls.empty());
    BOOST_TEST(f.server->connection_count() == 0u);
  }
  BOOST_REQUIRE(!prefork::init_logging(prefork::log_config{}));  // back to stderr
  std::ifstream file(logs / "master.log");
  std::stringstream content;
  content << file.rdbuf();
  BOOST_TEST(content.str().find("control connection forbidden") != std::string::npos, content.str());
  BOOST_TEST(content.str().find("uid=65534") != std::string::npos, content.str());
}

BOOST_AUTO_TEST_SUITE_END()
