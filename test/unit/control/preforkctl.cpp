#include "prefork/preforkctl.hpp"

#include "control/control_server.hpp"
#include "prefork/control_client.hpp"
#include "unit_support/temp_dir.hpp"
#include "unit_support/unix_listener.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/test/unit_test.hpp>

#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace {

namespace asio = boost::asio;
namespace json = boost::json;
using namespace prefork::detail;
using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

using prefork::unit_support::temp_dir;

sockaddr_un unix_address(const std::string& path) {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::strncpy(address.sun_path, path.c_str(), sizeof address.sun_path - 1);
  return address;
}

using prefork::unit_support::open_unix_listener;

// Answers like a small master with workers 1 and 2. Called on the server's thread; the
// test reads what it recorded through the locked accessors.
class fake_target final : public control_target {
 public:
  const json::object workers_counts_ready{{"desired", 2}, {"ready", 2}, {"starting", 0}, {"draining", 0}};
  const json::array workers_value{json::object{{"id", 1},
                                               {"pid", 1001},
                                               {"generation", 1},
                                               {"state", "ready"},
                                               {"active", 0},
                                               {"served", 5},
                                               {"started_at", "2026-01-01T00:00:00Z"},
                                               {"last_heartbeat_ms", 120},
                                               {"rss_bytes", 5242880}},
                                  json::object{{"id", 12},
                                               {"pid", 100200},
                                               {"generation", 3},
                                               {"state", "draining"},
                                               {"active", 13},
                                               {"served", 1700},
                                               {"started_at", "2026-01-01T00:00:01Z"},
                                               {"last_heartbeat_ms", 1500},
                                               {"rss_bytes", 734003200}}};
  const json::object stats_value{{"accepted", 10}, {"dispatched", 10}, {"lost", 0}, {"requests", 22}};
  const json::object config_value{{"workers", 2},
                                  {"control", "ctl.sock"},
                                  {"bind", json::array{"unix:app.sock"}},
                                  {"log", {{"level", "info"}, {"format", "text"}}}};

  std::vector<std::string> calls() const {
    std::lock_guard lock(mutex_);
    return calls_;
  }
  int status_calls() const {
    std::lock_guard lock(mutex_);
    return status_calls_;
  }
  /// status reports 1 of 2 ready (1 starting) until it has been asked this many times.
  void ready_after(int status_calls) {
    std::lock_guard lock(mutex_);
    ready_after_ = status_calls;
  }

  json::object status() override {
    std::lock_guard lock(mutex_);
    calls_.push_back("status");
    ++status_calls_;
    json::object counts = workers_counts_ready;
    if (status_calls_ <= ready_after_) {
      counts["ready"] = 1;
      counts["starting"] = 1;
    }
    return json::object{
        {"pid", 1234},
        {"version", "0.1.0"},
        {"uptime_s", 12.5},
        {"generation", generation_},
        {"state", "running"},
        {"workers", counts},
        {"listeners", json::array{json::object{{"bind", "unix:app.sock"}, {"address", "unix:/tmp/app.sock"}},
                                  json::object{{"bind", "127.0.0.1:0"}, {"address", "127.0.0.1:43123"}}}},
        {"dispatch", "least-connections"}};
  }
  json::array workers() override {
    record("workers");
    return workers_value;
  }
  json::object stats() override {
    record("stats");
    return stats_value;
  }
  json::object effective_config() override {
    record("config");
    return config_value;
  }
  std::uint64_t scale(std::uint64_t desired) override {
    record("scale " + std::to_string(desired));
    return desired;
  }
  asio::awaitable<prefork::result<std::uint64_t>> reload(bool wait) override {
    record(wait ? "reload wait" : "reload");
    if (wait) {
      asio::steady_timer timer(co_await asio::this_coro::executor, 50ms);
      co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
    }
    std::lock_guard lock(mutex_);
    co_return ++generation_;
  }
  void stop(stop_kind kind) override { record(kind == stop_kind::graceful ? "stop graceful" : "stop fast"); }
  prefork::result<std::int64_t> kill_worker(std::int64_t id, kill_signal signal) override {
    record("kill_worker " + std::to_string(id) + (signal == kill_signal::term ? " TERM" : " KILL"));
    if (id != 1 && id != 12) return prefork::failure{prefork::errc::not_found, "no worker " + std::to_string(id)};
    return id == 1 ? 1001 : 100200;
  }
  prefork::result<void> pause_worker(std::int64_t id) override {
    record("pause_worker " + std::to_string(id));
    if (id != 1 && id != 12) return prefork::failure{prefork::errc::not_found, "no worker " + std::to_string(id)};
    return {};
  }
  prefork::result<void> resume_worker(std::int64_t id) override {
    record("resume_worker " + std::to_string(id));
    if (id != 1 && id != 12) return prefork::failure{prefork::errc::not_found, "no worker " + std::to_string(id)};
    return {};
  }
  prefork::result<void> reopen_logs() override {
    record("reopen_logs");
    return {};
  }

 private:
  void record(std::string call) {
    std::lock_guard lock(mutex_);
    calls_.push_back(std::move(call));
  }

  mutable std::mutex mutex_;
  std::vector<std::string> calls_;
  int status_calls_ = 0;
  int ready_after_ = 0;
  std::uint64_t generation_ = 1;
};

// A control_server with a fake target, its io_context running in a thread (at most 60 s).
// With `delay`, the socket appears only after it (to test wait-ready).
struct server_thread {
  explicit server_thread(std::string socket_path = {}, std::chrono::milliseconds delay = 0ms)
      : path(socket_path.empty() ? dir / "ctl.sock" : socket_path) {
    if (delay == 0ms) start_server();
    thread = std::thread([this, delay] {
      if (delay > 0ms) {
        std::this_thread::sleep_for(delay);
        start_server();
      }
      io.run_for(60s);
    });
  }
  ~server_thread() {
    asio::post(io, [this] { server->close(); });
    thread.join();
  }
  void start_server() {
    server = std::make_unique<control_server>(io.get_executor(), open_unix_listener(path), target);
    server->start();
  }

  temp_dir dir;
  asio::io_context io;
  fake_target target;
  std::string path;
  std::unique_ptr<control_server> server;
  std::thread thread;
};

struct ctl_result {
  int code = -1;
  std::string out;
  std::string err;
};

ctl_result ctl(std::vector<std::string> args) {
  std::vector<const char*> argv{"preforkctl"};
  for (const auto& arg : args) argv.push_back(arg.c_str());
  std::ostringstream out;
  std::ostringstream err;
  ctl_result result;
  result.code = prefork::run_preforkctl(static_cast<int>(argv.size()), argv.data(), out, err);
  result.out = out.str();
  result.err = err.str();
  return result;
}

// preforkctl -s SOCKET args...
ctl_result ctl_at(const server_thread& server, std::vector<std::string> args) {
  args.insert(args.begin(), {"-s", server.path});
  return ctl(std::move(args));
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream stream(text);
  for (std::string line; std::getline(stream, line);) lines.push_back(line);
  return lines;
}

std::vector<std::string> words_of(const std::string& line) {
  std::vector<std::string> words;
  std::istringstream stream(line);
  for (std::string word; stream >> word;) words.push_back(word);
  return words;
}

void check_usage_error(std::vector<std::string> args, std::string_view message_part) {
  auto result = ctl(args);
  std::string shown;
  for (const auto& arg : args) shown += arg + " ";
  BOOST_TEST(result.code == 2, shown << "-> " << result.code << " " << result.err);
  BOOST_TEST(result.out.empty(), shown);
  BOOST_TEST(result.err.find(message_part) != std::string::npos, shown << "-> " << result.err);
  BOOST_TEST(result.err.find("--help") != std::string::npos, shown);
}

// Accepts one connection on `path` in a thread and hands it to `serve` (raw replies).
struct raw_server {
  raw_server(const std::string& path, std::function<void(int)> serve) : fd(open_unix_listener(path)) {
    thread = std::thread([this, serve = std::move(serve)] {
      pollfd ready{fd, POLLIN, 0};
      if (::poll(&ready, 1, 5000) != 1) return;
      int client = ::accept(fd, nullptr, nullptr);
      if (client < 0) return;
      serve(client);
      ::close(client);
    });
  }
  ~raw_server() {
    thread.join();
    ::close(fd);
  }
  int fd;
  std::thread thread;
};

// Reads one request line from `fd` (up to 1 s), so that replies follow a request.
void read_request(int fd) {
  char byte;
  pollfd ready{fd, POLLIN, 0};
  while (::poll(&ready, 1, 1000) == 1 && ::read(fd, &byte, 1) == 1 && byte != '\n') {
  }
}

// MSG_NOSIGNAL: the client may be gone already (no SIGPIPE for the test process).
void write_text(int fd, std::string_view text) { (void)!::send(fd, text.data(), text.size(), MSG_NOSIGNAL); }

// Restores the working directory at the end of a test.
struct cwd_guard {
  std::filesystem::path saved = std::filesystem::current_path();
  ~cwd_guard() { std::filesystem::current_path(saved); }
};

}  // namespace

BOOST_AUTO_TEST_SUITE(preforkctl)

BOOST_AUTO_TEST_CASE(help) {
  for (auto args :
       {std::vector<std::string>{"--help"}, std::vector<std::string>{"-h"}, std::vector<std::string>{"help"}}) {
    auto result = ctl(args);
    BOOST_TEST(result.code == 0);
    BOOST_TEST(result.err.empty());
    BOOST_TEST(result.out.starts_with("Usage: preforkctl [-s SOCKET | -c FILE] [--json] COMMAND [ARGS]"), result.out);
    for (std::string command : {"ping", "status", "workers", "stats", "scale N", "reload [--wait]", "stop [--fast]",
                                "kill-worker ID [--signal KILL|TERM]", "pause-worker ID", "resume-worker ID",
                                "reopen-logs", "config", "wait-ready [--timeout SECONDS]"})
      BOOST_TEST(result.out.find("  " + command) != std::string::npos, command);
    BOOST_TEST(result.out.find("Exit status") != std::string::npos);
  }
  auto scale = ctl({"scale", "--help"});
  BOOST_TEST(scale.code == 0);
  BOOST_TEST(scale.out.starts_with("Usage: preforkctl [-s SOCKET | -c FILE] [--json] scale N\n"), scale.out);
  BOOST_TEST(ctl({"help", "scale"}).out == scale.out);
  auto kill = ctl({"kill-worker", "-h"});
  BOOST_TEST(kill.code == 0);
  BOOST_TEST(kill.out.find("--signal KILL|TERM") != std::string::npos, kill.out);
  auto wait_ready = ctl({"wait-ready", "--help"});
  BOOST_TEST(wait_ready.out.find("--timeout SECONDS") != std::string::npos, wait_ready.out);
  // Help needs no server, and wins over a missing argument.
  BOOST_TEST(ctl({"-s", "/nonexistent/ctl.sock", "pause-worker", "--help"}).code == 0);
}

BOOST_AUTO_TEST_CASE(usage_errors_exit_2) {
  check_usage_error({}, "no command given");
  check_usage_error({"frobnicate"}, "unknown command \"frobnicate\"");
  check_usage_error({"--bogus", "ping"}, "unknown option --bogus");
  check_usage_error({"ping", "extra"}, "unexpected argument \"extra\"");
  check_usage_error({"scale"}, "scale: missing N");
  check_usage_error({"scale", "0"}, "N must be an integer >= 1");
  check_usage_error({"scale", "many"}, "N must be an integer >= 1");
  check_usage_error({"scale", "4x"}, "N must be an integer >= 1");
  check_usage_error({"kill-worker"}, "kill-worker: missing ID");
  check_usage_error({"kill-worker", "one"}, "ID must be an integer");
  check_usage_error({"kill-worker", "1", "--signal", "HUP"}, "--signal must be KILL or TERM");
  check_usage_error({"kill-worker", "1", "--signal"}, "--signal: missing value");
  check_usage_error({"pause-worker"}, "missing ID");
  check_usage_error({"resume-worker", "1", "2"}, "unexpected argument \"2\"");
  check_usage_error({"stop", "--wait"}, "--wait is not an option of stop");
  check_usage_error({"reload", "--fast"}, "--fast is not an option of reload");
  check_usage_error({"ping", "--timeout", "3"}, "--timeout is not an option of ping");
  check_usage_error({"wait-ready", "--timeout", "soon"}, "--timeout must be a number of seconds");
  check_usage_error({"wait-ready", "--timeout", "-1"}, "--timeout must be a number of seconds >= 0, got \"-1\"");
  check_usage_error({"-s"}, "-s: missing value");
  check_usage_error({"-s", "a.sock", "-c", "preforkd.json", "ping"}, "-s and -c cannot be used together");
  check_usage_error({"-s", "a.sock", "-s", "b.sock", "ping"}, "--socket given twice");
  check_usage_error({"--json", "--json", "ping"}, "--json given twice");
  check_usage_error({"help", "nothing"}, "unknown command \"nothing\"");
  check_usage_error({"-c", "/nonexistent/preforkd.json", "ping"}, "/nonexistent/preforkd.json");
}

BOOST_AUTO_TEST_CASE(bad_config_file_exits_2) {
  temp_dir dir;
  std::ofstream(dir / "bad.json") << R"({"control": 42})";
  auto result = ctl({"-c", dir / "bad.json", "ping"});
  BOOST_TEST(result.code == 2);
  BOOST_TEST(result.err.find("control") != std::string::npos, result.err);
}

BOOST_AUTO_TEST_CASE(no_server_exits_3) {
  temp_dir dir;
  auto missing = ctl({"-s", dir / "missing.sock", "ping"});
  BOOST_TEST(missing.code == 3);
  BOOST_TEST(missing.out.empty());
  BOOST_TEST(missing.err.starts_with("preforkctl: cannot connect to " + (dir / "missing.sock")), missing.err);
  BOOST_TEST(missing.err.find("No such file or directory") != std::string::npos, missing.err);

  // A stale socket file: nobody accepts, connect is refused.
  int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  auto address = unix_address(dir / "stale.sock");
  BOOST_REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
  ::close(fd);
  auto refused = ctl({"-s", dir / "stale.sock", "--json", "status"});
  BOOST_TEST(refused.code == 3);
  BOOST_TEST(refused.err.find("Connection refused") != std::string::npos, refused.err);

  // A path too long for a Unix socket.
  auto too_long = ctl({"-s", dir / std::string(200, 'x'), "ping"});
  BOOST_TEST(too_long.code == 3);
  BOOST_TEST(too_long.err.find("cannot connect") != std::string::npos, too_long.err);
}

BOOST_AUTO_TEST_CASE(ping) {
  server_thread server;
  auto result = ctl_at(server, {"ping"});
  BOOST_TEST(result.code == 0, result.err);
  BOOST_TEST(result.out == "pong\n");
  BOOST_TEST(result.err.empty());
  result = ctl_at(server, {"--json", "ping"});
  BOOST_TEST(result.code == 0);
  BOOST_TEST(result.out == "\"pong\"\n");
  // Global options may follow the command too.
  result = ctl({"ping", "--json", "-s", server.path});
  BOOST_TEST(result.code == 0);
  BOOST_TEST(result.out == "\"pong\"\n");
  result = ctl({"--socket=" + server.path, "ping"});
  BOOST_TEST(result.out == "pong\n");
}

BOOST_AUTO_TEST_CASE(status) {
  server_thread server;
  auto result = ctl_at(server, {"status"});
  BOOST_TEST(result.code == 0, result.err);
  const std::vector<std::string> expected{
      "state:      running",
      "pid:        1234",
      "version:    0.1.0",
      "uptime:     12.5 s",
      "generation: 1",
      "workers:    2 desired, 2 ready, 0 starting, 0 draining",
      "dispatch:   least-connections",
      "listeners:  unix:app.sock (unix:/tmp/app.sock)",
      "            127.0.0.1:0 (127.0.0.1:43123)",
  };
  BOOST_TEST(lines_of(result.out) == expected, boost::test_tools::per_element());
  result = ctl_at(server, {"--json", "status"});
  BOOST_TEST(result.code == 0);
  BOOST_TEST(lines_of(result.out).size() == 1u);
  auto status = json::parse(result.out);
  BOOST_TEST(status.at("state") == "running");
  BOOST_TEST(status.at("workers").at("desired") == 2);
}

BOOST_AUTO_TEST_CASE(workers_table) {
  server_thread server;
  auto result = ctl_at(server, {"workers"});
  BOOST_TEST(result.code == 0, result.err);
  auto lines = lines_of(result.out);
  BOOST_REQUIRE_EQUAL(lines.size(), 3u);
  BOOST_TEST(words_of(lines[0]) == (std::vector<std::string>{"ID", "PID", "GEN", "STATE", "ACTIVE", "SERVED", "STARTED",
                                                             "HEARTBEAT", "RSS"}),
             boost::test_tools::per_element());
  BOOST_TEST(words_of(lines[1]) == (std::vector<std::string>{"1", "1001", "1", "ready", "0", "5",
                                                             "2026-01-01T00:00:00Z", "120ms", "5.0M"}),
             boost::test_tools::per_element());
  BOOST_TEST(words_of(lines[2]) == (std::vector<std::string>{"12", "100200", "3", "draining", "13", "1700",
                                                             "2026-01-01T00:00:01Z", "1.5s", "700M"}),
             boost::test_tools::per_element());
  // Aligned: every column starts at the same offset on every line.
  for (const auto& [header, value] : {std::pair{"PID", "100200"}, std::pair{"STATE", "draining"},
                                      std::pair{"STARTED", "2026-01-01T00:00:01Z"}, std::pair{"RSS", "700M"}})
    BOOST_TEST(lines[0].find(header) == lines[2].find(value), header);
  BOOST_TEST(lines[0].find("PID") == lines[1].find("1001"));
  for (const auto& line : lines) BOOST_TEST(!line.ends_with(" "), "trailing space: " << line);

  result = ctl_at(server, {"workers", "--json"});
  BOOST_TEST(result.code == 0);
  BOOST_TEST(json::parse(result.out) == json::value(server.target.workers_value));
}

BOOST_AUTO_TEST_CASE(stats) {
  server_thread server;
  auto result = ctl_at(server, {"stats"});
  BOOST_TEST(result.code == 0, result.err);
  BOOST_TEST(result.out == "accepted: 10\ndispatched: 10\nlost: 0\nrequests: 22\n");
  result = ctl_at(server, {"--json", "stats"});
  BOOST_TEST(json::parse(result.out) == json::value(server.target.stats_value));
}

BOOST_AUTO_TEST_CASE(scale) {
  server_thread server;
  auto result = ctl_at(server, {"scale", "4"});
  BOOST_TEST(result.code == 0, result.err);
  BOOST_TEST(result.out == "desired: 4\n");
  result = ctl_at(server, {"--json", "scale", "7"});
  BOOST_TEST(result.out == "{\"desired\":7}\n");
  // The master's own limit comes back as its error: exit 1.
  result = ctl_at(server, {"scale", "5000"});
  BOOST_TEST(result.code == 1);
  BOOST_TEST(result.out.empty());
  BOOST_TEST(result.err == "preforkctl: bad_request: workers must be at most 1024\n");
  BOOST_TEST(server.target.calls() == (std::vector<std::string>{"scale 4", "scale 7"}));
}

BOOST_AUTO_TEST_CASE(reload) {
  server_thread server;
  auto result = ctl_at(server, {"reload"});
  BOOST_TEST(result.code == 0, result.err);
  BOOST_TEST(result.out == "reload started: generation 2\n");
  result = ctl_at(server, {"reload", "--wait"});
  BOOST_TEST(result.code == 0, result.err);
  BOOST_TEST(result.out == "reloaded: generation 3\n");
  result = ctl_at(server, {"--json", "reload"});
  BOOST_TEST(result.out == "{\"generation\":4}\n");
  BOOST_TEST(server.target.calls() == (std::vector<std::string>{"reload", "reload wait", "reload"}));
}

BOOST_AUTO_TEST_CASE(stop) {
  server_thread server;
  auto result = ctl_at(server, {"stop"});
  BOOST_TEST(result.code == 0, result.err);
  BOOST_TEST(result.out == "stopping\n");
  result = ctl_at(server, {"stop", "--fast", "--json"});
  BOOST_TEST(result.code == 0, result.err);
  BOOST_TEST(result.out == "{}\n");
  // stop() runs after the reply is written: wait for it.
  const auto deadline = steady::now() + 2s;
  while (server.target.calls().size() < 2 && steady::now() < deadline) std::this_thread::sleep_for(5ms);
  BOOST_TEST(server.target.calls() == (std::vector<std::string>{"stop graceful", "stop fast"}));
}

BOOST_AUTO_TEST_CASE(kill_worker) {
  server_thread server;
  auto result = ctl_at(server, {"kill-worker", "1"});
  BOOST_TEST(result.code == 0, result.err);
  BOOST_TEST(result.out == "sent TERM to worker 1 (pid 1001)\n");
  result = ctl_at(server, {"kill-worker", "12", "--signal", "KILL"});
  BOOST_TEST(result.out == "sent KILL to worker 12 (pid 100200)\n");
  result = ctl_at(server, {"kill_worker", "--signal=sigkill", "1", "--json"});
  BOOST_TEST(result.code == 0, result.err);
  BOOST_TEST(result.out == "{\"pid\":1001}\n");
  result = ctl_at(server, {"kill-worker", "9"});
  BOOST_TEST(result.code == 1);
  BOOST_TEST(result.out.empty());
  BOOST_TEST(result.err == "preforkctl: not_found: no worker 9\n");
  BOOST_TEST(server.target.calls() == (std::vector<std::string>{"kill_worker 1 TERM", "kill_worker 12 KILL",
                                                                "kill_worker 1 KILL", "kill_worker 9 TERM"}));
}

BOOST_AUTO_TEST_CASE(pause_and_resume_worker) {
  server_thread server;
  auto result = ctl_at(server, {"pause-worker", "1"});
  BOOST_TEST(result.code == 0, result.err);
  BOOST_TEST(result.out == "worker 1 paused\n");
  result = ctl_at(server, {"resume-worker", "1"});
  BOOST_TEST(result.code == 0, result.err);
  BOOST_TEST(result.out == "worker 1 resumed\n");
  result = ctl_at(server, {"--json", "pause-worker", "12"});
  BOOST_TEST(result.out == "{}\n");
  result = ctl_at(server, {"pause-worker", "9"});
  BOOST_TEST(result.code == 1);
  BOOST_TEST(result.err == "preforkctl: not_found: no worker 9\n");
  result = ctl_at(server, {"resume-worker", "9"});
  BOOST_TEST(result.code == 1);
  BOOST_TEST(result.err == "preforkctl: not_found: no worker 9\n");
}

BOOST_AUTO_TEST_CASE(reopen_logs_and_config) {
  server_thread server;
  auto result = ctl_at(server, {"reopen-logs"});
  BOOST_TEST(result.code == 0, result.err);
  BOOST_TEST(result.out == "logs reopened\n");
  result = ctl_at(server, {"--json", "reopen-logs"});
  BOOST_TEST(result.out == "{}\n");

  result = ctl_at(server, {"config"});
  BOOST_TEST(result.code == 0, result.err);
  BOOST_TEST(lines_of(result.out).size() > 4u, result.out);  // pretty-printed for people
  BOOST_TEST(result.out.find("  \"workers\": 2") != std::string::npos, result.out);
  BOOST_TEST(json::parse(result.out) == json::value(server.target.config_value));
  result = ctl_at(server, {"--json", "config"});
  BOOST_TEST(lines_of(result.out).size() == 1u);
  BOOST_TEST(json::parse(result.out) == json::value(server.target.config_value));
}

BOOST_AUTO_TEST_CASE(config_file_of_a_program_with_its_own_sections) {
  // preforkctl cannot see the program's apps: their sections pass, the rest is checked.
  server_thread server;
  temp_dir dir;
  std::ofstream(dir / "kv.json") << R"({"control": ")" << server.path
                                 << R"(", "app": "kv", "kv": {"max_keys": 10}, "log": {"level": "info"}})";
  auto result = ctl({"-c", dir / "kv.json", "ping"});
  BOOST_TEST(result.code == 0, result.err);
  BOOST_TEST(result.out == "pong\n");

  std::ofstream(dir / "typo.json") << R"({"control": ")" << server.path << R"(", "workrs": 2})";
  auto typo = ctl({"-c", dir / "typo.json", "ping"});
  BOOST_TEST(typo.code == 2);
  BOOST_TEST(typo.err.find(R"(unknown key "workrs")") != std::string::npos, typo.err);
  std::ofstream(dir / "nested.json") << R"({"control": ")" << server.path << R"(", "log": {"levle": "info"}})";
  auto nested = ctl({"-c", dir / "nested.json", "ping"});
  BOOST_TEST(nested.code == 2);
  BOOST_TEST(nested.err.find(R"(unknown key "log.levle")") != std::string::npos, nested.err);
}

BOOST_AUTO_TEST_CASE(socket_from_config_env_and_default) {
  server_thread server;
  temp_dir dir;
  std::ofstream(dir / "preforkd.json") << R"({"control": ")" << server.path << R"("})";
  auto result = ctl({"-c", dir / "preforkd.json", "ping"});
  BOOST_TEST(result.code == 0, result.err);
  BOOST_TEST(result.out == "pong\n");

  BOOST_REQUIRE(::setenv("PREFORK_CONTROL", server.path.c_str(), 1) == 0);
  result = ctl({"ping"});
  BOOST_TEST(result.code == 0, result.err);
  // -s wins over the environment.
  auto elsewhere = ctl({"-s", dir / "nothing.sock", "ping"});
  ::unsetenv("PREFORK_CONTROL");
  BOOST_TEST(elsewhere.code == 3);

  // Nothing given: run/preforkd.ctl relative to the working directory.
  cwd_guard restore;
  std::filesystem::current_path(dir.path);
  result = ctl({"ping"});
  BOOST_TEST(result.code == 3);
  BOOST_TEST(result.err.find("run/preforkd.ctl") != std::string::npos, result.err);
  std::filesystem::create_directory(dir / "run");
  server_thread local(dir / "run/preforkd.ctl");
  result = ctl({"ping"});
  BOOST_TEST(result.code == 0, result.err);
  // A relative "control" in the config file is relative to the working directory too.
  std::ofstream(dir / "relative.json") << R"({"control": "run/preforkd.ctl"})";
  result = ctl({"-c", "relative.json", "ping"});
  BOOST_TEST(result.code == 0, result.err);
}

BOOST_AUTO_TEST_CASE(wait_ready_returns_once_ready) {
  server_thread server;
  server.target.ready_after(3);
  auto started = steady::now();
  auto result = ctl_at(server, {"wait-ready", "--timeout", "5"});
  BOOST_TEST(result.code == 0, result.err);
  BOOST_TEST(result.out == "ready\n");
  BOOST_TEST(server.target.status_calls() == 4);
  BOOST_TEST((steady::now() - started >= 3 * 50ms));  // polled every 50 ms

  result = ctl_at(server, {"wait-ready", "--json"});
  BOOST_TEST(result.code == 0, result.err);
  BOOST_TEST(json::parse(result.out).at("workers").at("ready") == 2);
}

BOOST_AUTO_TEST_CASE(wait_ready_waits_for_the_socket) {
  temp_dir dir;
  const std::string path = dir / "late.sock";
  auto started = steady::now();
  server_thread server(path, 300ms);
  auto result = ctl({"-s", path, "wait-ready", "--timeout", "5"});
  BOOST_TEST(result.code == 0, result.err);
  BOOST_TEST(result.out == "ready\n");
  BOOST_TEST((steady::now() - started >= 300ms));
}

BOOST_AUTO_TEST_CASE(wait_ready_times_out) {
  server_thread server;
  server.target.ready_after(1000000);
  auto started = steady::now();
  auto result = ctl_at(server, {"wait-ready", "--timeout", "0.3"});
  auto waited = steady::now() - started;
  BOOST_TEST(result.code == 1);
  BOOST_TEST(result.out.empty());
  BOOST_TEST(
      result.err.find("wait-ready: timed out after 0.3 s waiting for workers to be ready (1 of 2 ready, 1 starting)") !=
          std::string::npos,
      result.err);
  BOOST_TEST((waited >= 300ms));
  BOOST_TEST((waited < 2s));

  temp_dir dir;
  result = ctl({"-s", dir / "never.sock", "wait-ready", "--timeout", "0.2"});
  BOOST_TEST(result.code == 1);
  BOOST_TEST(result.err.find("waiting for the control socket " + (dir / "never.sock")) != std::string::npos,
             result.err);
}

BOOST_AUTO_TEST_CASE(a_full_control_backlog_is_busy_not_a_bogus_error) {
  // Linux refuses a Unix connect with EAGAIN while the backlog is full; preforkctl waits
  // for room until its deadline and then says the master is busy (never ENOTCONN).
  temp_dir dir;
  const std::string path = dir / "busy.sock";
  prefork::unit_support::full_unix_listener listener(path);
  auto result = ctl({"-s", path, "wait-ready", "--timeout", "0.3"});
  BOOST_TEST(result.code == 1);
  BOOST_TEST(result.err.find("the master is busy (its control backlog stayed full for") != std::string::npos,
             result.err);
  BOOST_TEST(result.err.find("not connected") == std::string::npos, result.err);
}

BOOST_AUTO_TEST_CASE(forbidden_exits_3) {
  temp_dir dir;
  const std::string path = dir / "ctl.sock";
  raw_server server(path, [](int fd) {
    write_text(
        fd,
        R"({"ok":false,"error":{"code":"forbidden","message":"only the master's user or root may use the control socket"}})"
        "\n");
  });
  auto result = ctl({"-s", path, "ping"});
  BOOST_TEST(result.code == 3);
  BOOST_TEST(result.err == "preforkctl: forbidden: only the master's user or root may use the control socket\n");
}

BOOST_AUTO_TEST_CASE(bad_reply_exits_1) {
  temp_dir dir;
  const std::string path = dir / "ctl.sock";
  raw_server server(path, [](int fd) {
    read_request(fd);
    write_text(fd, "this is not a reply\n");
  });
  auto result = ctl({"-s", path, "ping"});
  BOOST_TEST(result.code == 1);
  BOOST_TEST(result.err.find("bad reply from the master (not JSON)") != std::string::npos, result.err);
}

BOOST_AUTO_TEST_CASE(closed_without_reply_exits_3) {
  temp_dir dir;
  const std::string path = dir / "ctl.sock";
  raw_server server(path, [](int fd) { read_request(fd); });
  auto result = ctl({"-s", path, "ping"});
  BOOST_TEST(result.code == 3);
  BOOST_TEST(result.err.find("closed the connection") != std::string::npos, result.err);
}

// --- the client under preforkctl ------------------------------------------------------

BOOST_AUTO_TEST_CASE(client_times_out_on_a_silent_master) {
  temp_dir dir;
  const std::string path = dir / "ctl.sock";
  raw_server server(path, [](int fd) {
    read_request(fd);
    std::this_thread::sleep_for(500ms);  // answers too late
    write_text(fd, "{\"ok\":true,\"result\":\"pong\"}\n");
  });
  prefork::control_client client;
  BOOST_REQUIRE(client.connect(path, 1s).has_value());
  auto started = steady::now();
  auto result = client.call({{"cmd", "ping"}}, 150ms);
  BOOST_REQUIRE(!result.has_value());
  BOOST_TEST((result.error().code == prefork::errc::timeout));
  BOOST_TEST((steady::now() - started < 450ms));
  BOOST_TEST(!client.is_open(), "a timed out connection must not be reused");
  auto again = client.call({{"cmd", "ping"}}, 100ms);
  BOOST_TEST((again.error().code == prefork::errc::disconnected));
}

BOOST_AUTO_TEST_CASE(client_reads_the_refusal_line_when_its_own_write_fails) {
  // The master over its connection cap writes one error line and closes at once; the
  // client's request then fails to send (EPIPE), and the line must still be its answer.
  temp_dir dir;
  const std::string path = dir / "ctl.sock";
  std::promise<void> refused;
  raw_server server(path, [&](int fd) {
    write_text(fd, R"({"ok":false,"error":{"code":"bad_request","message":"too many control connections"}})"
                   "\n");
    ::shutdown(fd, SHUT_RDWR);
    refused.set_value();
  });
  prefork::control_client client;
  BOOST_REQUIRE(client.connect(path, 1s).has_value());
  BOOST_REQUIRE(refused.get_future().wait_for(5s) == std::future_status::ready);
  auto result = client.call({{"cmd", "ping"}}, 2s);
  BOOST_REQUIRE(!result.has_value());
  BOOST_TEST((prefork::is_remote(result.error())), result.error().message);
  BOOST_TEST(result.error().code == prefork::errc::bad_request);
  BOOST_TEST(result.error().message == "too many control connections");
}

BOOST_AUTO_TEST_CASE(client_keeps_the_connection_after_remote_errors) {
  server_thread server;
  prefork::control_client client;
  BOOST_REQUIRE(client.connect(server.path, 1s).has_value());
  auto failed = client.call({{"cmd", "kill_worker"}, {"id", 9}}, 2s);
  BOOST_REQUIRE(!failed.has_value());
  BOOST_TEST((prefork::is_remote(failed.error())));
  BOOST_TEST(failed.error().code == prefork::errc::not_found);
  BOOST_TEST(failed.error().message == "no worker 9");
  BOOST_TEST(client.is_open());
  auto raw = client.call_raw("{\"cmd\":\"ping\"}\n{\"cmd\":\"ping\"}\n", 2s);
  BOOST_TEST(raw.value() == "{\"ok\":true,\"result\":\"pong\"}");
  auto second = client.read_line(2s);
  BOOST_TEST(second.value() == "{\"ok\":true,\"result\":\"pong\"}");
  auto ok = client.call({{"cmd", "ping"}}, 2s);
  BOOST_TEST(ok.value() == "pong");
  BOOST_CHECK_THROW((void)failed.value(), std::runtime_error);
}

BOOST_AUTO_TEST_CASE(parse_control_reply_cases) {
  using prefork::parse_control_reply;
  BOOST_TEST(parse_control_reply(R"({"ok":true,"result":{"desired":4}})").value() == json::parse(R"({"desired":4})"));
  auto remote = parse_control_reply(R"({"ok":false,"error":{"code":"not_found","message":"no worker 9"}})");
  BOOST_TEST((prefork::is_remote(remote.error())));
  BOOST_TEST(remote.error().code == prefork::errc::not_found);
  for (std::string bad : {"", "nonsense", "[]", "{}", R"({"ok":"yes"})", R"({"ok":true})", R"({"ok":false})",
                          R"({"ok":false,"error":"x"})", R"({"ok":false,"error":{"message":"m"}})"}) {
    auto parsed = parse_control_reply(bad);
    BOOST_REQUIRE_MESSAGE(!parsed.has_value(), bad);
    BOOST_TEST((parsed.error().code == prefork::errc::bad_reply), bad);
  }
}

BOOST_AUTO_TEST_SUITE_END()
