// HUP and control reload under load (SPEC sections 2, 3 and 7): a new generation replaces
// the old one with zero failed requests, keep-alive connections survive (handed back and
// migrated), a broken file changes nothing, reloads queue instead of stacking, and
// listeners follow the file.
#include "prefork/testing.hpp"
#include "support/http_client.hpp"
#include "support/json_fields.hpp"
#include "support/lifecycle.hpp"
#include "support/load.hpp"
#include "support/procfs.hpp"
#include "support/server_helpers.hpp"

#include <boost/asio/error.hpp>
#include <boost/json/serialize.hpp>
#include <boost/test/unit_test.hpp>

#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <filesystem>
#include <thread>

using namespace prefork::test_support;
using namespace std::chrono_literals;
namespace json = boost::json;
using clock_type = std::chrono::steady_clock;

namespace {

constexpr int workers = 2;
constexpr auto reload_timeout = 60s;
const char* const ready_message = "reload: new generation ready, retiring the old one";

prefork::testing::server_options reload_options() {
  auto options = boost_test_options();
  options.config["app"] = "testbed";
  options.config["workers"] = workers;
  options.config["graceful_timeout"] = 20;
  options.config["keepalive"] = 30;  // idle keep-alive connections outlive every reload here
  return options;
}

void require_load_going(const load_generator& load, std::uint64_t count) {
  bool going = load.wait_successes(count, 30s);
  BOOST_REQUIRE_MESSAGE(going, "load did not get going: " << load.snapshot().summary());
}

// Waits until `count` more requests succeeded, so that a phase is really under load.

bool intersects(const std::vector<pid_t>& a, const std::vector<pid_t>& b) {
  return std::any_of(a.begin(), a.end(), [&](pid_t pid) { return std::binary_search(b.begin(), b.end(), pid); });
}

// Waits for the first log line with `msg` whose "generation" is `generation`.
std::optional<json::object> wait_for_generation_log(const prefork::testing::server& server, std::string_view msg,
                                                    long long generation, std::chrono::milliseconds timeout) {
  return server.wait_for_log(msg, timeout,
                             [&](const json::object& line) { return log_int(line, "generation") == generation; });
}

// The text a JSON "reloading" line for `generation` contains.
std::string reloading_text(long long generation) {
  return "\"msg\":\"reloading\",\"generation\":" + std::to_string(generation) + ",";
}

// Polls stderr for `text` every 200 us (wait_for_log polls every 10 ms, longer than a
// whole reload takes here).
bool wait_for_log_text(const prefork::testing::server& server, const std::string& text,
                       std::chrono::milliseconds timeout) {
  auto path = server.directory() / "stderr.log";
  auto deadline = clock_type::now() + timeout;
  std::uintmax_t seen_size = 0;
  for (;;) {
    std::error_code ec;
    auto size = std::filesystem::file_size(path, ec);
    if (!ec && size != seen_size) {
      seen_size = size;
      if (prefork::testing::read_file(path).find(text) != std::string::npos) return true;
    }
    if (clock_type::now() >= deadline) return false;
    std::this_thread::sleep_for(200us);
  }
}

// A control connection written and read with plain system calls, so that requests can be
// sent while the master is stopped (control_client waits for each reply).
class raw_control {
 public:
  raw_control() = default;
  ~raw_control() {
    if (fd_ >= 0) ::close(fd_);
  }
  raw_control(const raw_control&) = delete;
  raw_control& operator=(const raw_control&) = delete;

  bool connect(const std::filesystem::path& path) {
    fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) return false;
    // Bounds connect (a full backlog of a stopped master) and every send.
    const timeval limit{10, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &limit, sizeof limit);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::string text = path.string();
    if (text.size() >= sizeof address.sun_path) return false;
    std::copy(text.begin(), text.end(), address.sun_path);
    return ::connect(fd_, reinterpret_cast<const sockaddr*>(&address), sizeof address) == 0;
  }

  bool send(std::string_view bytes) {
    while (!bytes.empty()) {
      ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      bytes.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
  }

  // The next line without its newline; nullopt on timeout, EOF or error.
  std::optional<std::string> read_line(std::chrono::milliseconds timeout) {
    auto deadline = clock_type::now() + timeout;
    for (;;) {
      if (auto newline = buffer_.find('\n'); newline != std::string::npos) {
        std::string line = buffer_.substr(0, newline);
        buffer_.erase(0, newline + 1);
        return line;
      }
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock_type::now()).count();
      if (left <= 0) return std::nullopt;
      pollfd waiting{fd_, POLLIN, 0};
      int ready = ::poll(&waiting, 1, static_cast<int>(left));
      if (ready < 0 && errno == EINTR) continue;
      if (ready <= 0) return std::nullopt;
      char chunk[4096];
      ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return std::nullopt;
      buffer_.append(chunk, static_cast<std::size_t>(n));
    }
  }

 private:
  int fd_ = -1;
  std::string buffer_;
};

// The state letter of /proc/PID/stat ('R', 'S', 'T' stopped, ...), '?' when gone.
char process_state(pid_t pid) {
  std::string text = prefork::testing::read_file(std::filesystem::path("/proc") / std::to_string(pid) / "stat");
  auto close = text.rfind(')');
  if (close == std::string::npos || close + 2 >= text.size()) return '?';
  return text[close + 2];
}

// Sends SIGCONT to the master when it goes out of scope (a second SIGCONT is harmless;
// a master that has exited needs none).
struct continue_on_exit {
  prefork::testing::server& server;
  ~continue_on_exit() {
    try {
      server.signal(SIGCONT);
    } catch (const std::runtime_error&) {
    }
  }
};

void require_no_failures(const load_result& result) { BOOST_TEST(result.total_failures() == 0u, result.summary()); }

long long milliseconds_between(std::chrono::system_clock::time_point from, std::chrono::system_clock::time_point to) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(to - from).count();
}

}  // namespace

BOOST_AUTO_TEST_SUITE(reload)

BOOST_AUTO_TEST_CASE(hup_under_connection_per_request_load) {
  prefork::testing::server server(reload_options());
  auto before = worker_pids(server);
  BOOST_REQUIRE_EQUAL(before.size(), static_cast<std::size_t>(workers));
  auto first = whoami(unix_endpoint(server), 5s);
  BOOST_REQUIRE_MESSAGE(first.has_value(), "whoami: " << first.error().message());
  BOOST_TEST(first->generation == 1);

  load_generator load(load_on(server, load_mode::connection_per_request, 12));
  require_load_going(load, 300);

  auto hup_at = std::chrono::system_clock::now();
  auto hup_steady = clock_type::now();
  server.signal(SIGHUP);
  auto ready = wait_for_generation_log(server, ready_message, 2, reload_timeout);
  BOOST_REQUIRE_MESSAGE(ready.has_value(), "the new generation never got ready\n" << server.log_tail(40));
  auto seen_after = std::chrono::duration_cast<std::chrono::milliseconds>(clock_type::now() - hup_steady).count();
  auto ready_at = log_time(*ready);
  BOOST_REQUIRE(ready_at.has_value());
  auto reloading = server.find_log("reloading");
  BOOST_REQUIRE_EQUAL(reloading.size(), 1u);
  auto reloading_at = log_time(reloading[0]);
  BOOST_REQUIRE(reloading_at.has_value());

  // The old generation goes: none of its pids is left, the new one has `workers` workers.
  std::vector<pid_t> after;
  bool replaced = wait_until(
      [&] {
        after = worker_pids(server);
        return after.size() == static_cast<std::size_t>(workers) && !intersects(after, before);
      },
      30s);
  BOOST_REQUIRE_MESSAGE(replaced, "old workers still there or wrong count\n" << server.log_tail(40));
  require_more_successes(load, 300, "after the reload");

  for (int i = 0; i < 4; ++i) {
    auto now = whoami(unix_endpoint(server), 5s);
    BOOST_REQUIRE_MESSAGE(now.has_value(), "whoami: " << now.error().message());
    BOOST_TEST(now->generation == 2);
    BOOST_TEST(std::binary_search(after.begin(), after.end(), now->pid),
               "whoami pid " << now->pid << " not a new worker");
  }
  auto status = server.status();
  BOOST_TEST(json_int(status, "generation").value_or(-1) == 2);
  BOOST_TEST(log_string(status, "state") == "running");

  auto result = load.stop();
  auto stats = server.stats();
  BOOST_TEST_MESSAGE("HUP, connection-per-request, 12 clients: "
                     << result.summary() << "; migrated " << json::serialize(stats.at("migrated")) << "; reload took "
                     << milliseconds_between(hup_at, *ready_at) << " ms from HUP to \"" << ready_message << "\" ("
                     << milliseconds_between(*reloading_at, *ready_at)
                     << " ms from \"reloading\"; seen by the test after " << seen_after << " ms)");
  require_no_failures(result);
  BOOST_TEST(json_int(stats, "reloads").value_or(-1) == 1);
  BOOST_TEST(json_int(stats, "lost").value_or(-1) == 0);
  BOOST_TEST(json_int(stats, "worker_crashes").value_or(-1) == 0);
  require_clean_stop(server);
}

BOOST_AUTO_TEST_CASE(hup_with_keep_alive_clients_reusing_their_connections) {
  constexpr int clients = 12;
  prefork::testing::server server(reload_options());
  auto before = worker_pids(server);

  // Idle keep-alive connections held across the reload: the old workers must hand them
  // back, and the next request on each is served by the new generation.
  constexpr long long idle_count = 4;
  std::vector<http_connection> idle(idle_count);
  for (auto& connection : idle) {
    BOOST_REQUIRE(!connection.connect(unix_endpoint(server), 5s));
    auto reply = whoami(connection, 5s);
    BOOST_REQUIRE_MESSAGE(reply.has_value(), "whoami: " << reply.error().message());
    BOOST_REQUIRE_EQUAL(reply->generation, 1);
  }

  load_generator load(load_on(server, load_mode::keep_alive, clients));
  // Slow requests, so that the old workers have requests in flight when they drain: those
  // finish with `Connection: close` (a clean reconnect, not a failure).
  load_options slow_options = load_on(server, load_mode::keep_alive, 4);
  slow_options.path = "/sleep?ms=200";
  slow_options.expected_body.reset();
  load_generator slow(slow_options);
  // Many requests per client: every client has its connection open before the HUP.
  require_load_going(load, 100 * clients);
  require_load_going(slow, 8);
  auto reconnects_before = load.snapshot().reconnects;

  auto hup_at = std::chrono::system_clock::now();
  server.signal(SIGHUP);
  auto ready = wait_for_generation_log(server, ready_message, 2, reload_timeout);
  BOOST_REQUIRE_MESSAGE(ready.has_value(), "the new generation never got ready\n" << server.log_tail(40));
  bool old_gone = wait_until([&] { return !intersects(worker_pids(server), before); }, 30s);
  BOOST_REQUIRE_MESSAGE(old_gone, "old workers still alive 30 s after the switch\n" << server.log_tail(40));
  require_more_successes(load, 1000, "after the reload");

  for (std::size_t i = 0; i < idle.size(); ++i) {
    auto reply = whoami(idle[i], 5s);
    BOOST_TEST(reply.has_value(),
               "idle connection " << i << " after the reload: " << (reply ? "" : reply.error().message()));
    if (reply)
      BOOST_TEST(reply->generation == 2, "idle connection " << i << " served by generation " << reply->generation);
  }
  idle.clear();

  auto result = load.stop();
  auto slow_result = slow.stop();
  auto stats = server.stats();
  auto migrated = json_int(stats, "migrated").value_or(-1);
  auto reconnects = result.reconnects - reconnects_before;
  BOOST_TEST_MESSAGE("HUP, keep-alive, " << clients << " clients: " << result.summary() << "; migrated " << migrated
                                         << "; reload took " << milliseconds_between(hup_at, *log_time(*ready))
                                         << " ms from HUP to \"" << ready_message << "\"");
  BOOST_TEST_MESSAGE("slow keep-alive clients (/sleep?ms=200): " << slow_result.summary());
  require_no_failures(result);
  require_no_failures(slow_result);
  // Every connection the old generation held either was handed back (migrated) or was
  // closed cleanly after a response with `Connection: close` (a reconnect): the load's
  // clients and the held idle ones.
  BOOST_TEST(migrated >= idle_count, "migrated " << migrated);
  BOOST_TEST(migrated - idle_count + static_cast<long long>(reconnects) >= clients,
             "migrated " << migrated << ", reconnects " << reconnects);
  BOOST_TEST(json_int(stats, "lost").value_or(-1) == 0);
  require_clean_stop(server);
}

// The reload race made deterministic: a keep-alive response is still being written (the
// client does not read it yet) when its worker starts draining. The response was built as
// keep-alive, so the client will reuse the connection; the worker must then hand it back
// like any idle one, not close it (which the client sees as a reset or an EOF).
BOOST_AUTO_TEST_CASE(keep_alive_response_still_being_written_when_the_drain_starts) {
  constexpr std::size_t body_bytes = 4 * 1024 * 1024;  // far more than the socket buffers hold
  prefork::testing::server_options options = reload_options();
  options.config["workers"] = 1;
  options.config["http"] = json::object{{"max_body_bytes", 2 * body_bytes}};
  prefork::testing::server server(std::move(options));
  auto before = worker_pids(server);
  BOOST_REQUIRE_EQUAL(before.size(), 1u);

  http_connection connection;
  BOOST_REQUIRE(!connection.connect(unix_endpoint(server), 5s));
  std::string request = "POST /echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: " + std::to_string(body_bytes) +
                        "\r\n\r\n" + std::string(body_bytes, 'x');
  auto sent = connection.send(request, 20s);
  BOOST_REQUIRE_MESSAGE(!sent, "sending the body: " << sent.message());
  // The worker now writes the echo, blocked on the client's full socket buffer.
  std::this_thread::sleep_for(200ms);

  server.signal(SIGHUP);
  auto ready = wait_for_generation_log(server, ready_message, 2, reload_timeout);
  BOOST_REQUIRE_MESSAGE(ready.has_value(), "the reload did not finish\n" << server.log_tail(40));
  auto draining = server.wait_for_log("worker draining", 10s, [&](const json::object& line) {
    return log_int(line, "pid").value_or(-1) == before.front();
  });
  BOOST_REQUIRE_MESSAGE(draining.has_value(), "the old worker did not start draining\n" << server.log_tail(40));

  auto echoed = connection.read_response(20s);
  BOOST_REQUIRE_MESSAGE(echoed.has_value(), "the echo: " << echoed.error().message());
  BOOST_TEST(echoed->status == 200u);
  BOOST_TEST(echoed->body.size() == body_bytes);
  BOOST_TEST_MESSAGE("the echo's Connection header: " << echoed->header("Connection").value_or("(none)")
                                                      << ", keep-alive " << echoed->keep_alive);
  if (echoed->keep_alive) {
    // The client may reuse it, so it must be served (by the new generation).
    auto next = whoami(connection, 10s);
    BOOST_TEST(next.has_value(), "the reused connection after the drain: " << (next ? "" : next.error().message()));
    if (next) BOOST_TEST(next->generation == 2);
  }
  connection.close();
  require_clean_stop(server);
}

BOOST_AUTO_TEST_CASE(repeated_hups_under_mixed_load) {
  constexpr int reloads = 5;
  prefork::testing::server server(reload_options());
  load_generator per_request(load_on(server, load_mode::connection_per_request, 6));
  load_generator keep_alive(load_on(server, load_mode::keep_alive, 6));
  load_options slow_options = load_on(server, load_mode::keep_alive, 2);
  slow_options.path = "/sleep?ms=50";
  slow_options.expected_body.reset();
  load_generator slow(slow_options);
  require_load_going(per_request, 100);
  require_load_going(keep_alive, 300);

  for (int i = 0; i < reloads; ++i) {
    auto before = worker_pids(server);
    server.signal(SIGHUP);
    auto ready = wait_for_generation_log(server, ready_message, 2 + i, reload_timeout);
    BOOST_REQUIRE_MESSAGE(ready.has_value(), "reload " << i + 1 << " did not finish\n" << server.log_tail(40));
    bool old_gone = wait_until([&] { return !intersects(worker_pids(server), before); }, 30s);
    BOOST_REQUIRE_MESSAGE(old_gone, "reload " << i + 1 << ": old workers still alive\n" << server.log_tail(40));
    require_more_successes(keep_alive, 100, "between reloads");
  }
  auto results = std::array{per_request.stop(), keep_alive.stop(), slow.stop()};
  auto stats = server.stats();
  BOOST_TEST_MESSAGE(reloads << " HUPs: per-request " << results[0].summary() << "; keep-alive " << results[1].summary()
                             << "; slow " << results[2].summary() << "; stats " << json::serialize(stats));
  for (const auto& result : results) require_no_failures(result);
  BOOST_TEST(json_int(stats, "reloads").value_or(-1) == reloads);
  BOOST_TEST(json_int(stats, "lost").value_or(-1) == 0);
  BOOST_TEST(json_int(stats, "worker_crashes").value_or(-1) == 0);
  BOOST_TEST(json_int(server.status(), "generation").value_or(-1) == 1 + reloads);
  require_clean_stop(server);
}

BOOST_AUTO_TEST_CASE(reload_naming_another_app_keeps_the_running_one) {
  // The master keeps the app it started with; a file naming another one (registered or
  // not) is a failed reload, not a generation that silently serves the old app.
  prefork::testing::server server(reload_options());
  const auto reload_error = [&](const json::object& changes) -> std::string {
    rewrite_config(server, changes);
    try {
      server.control({{"cmd", "reload"}, {"wait", true}});
    } catch (const prefork::testing::control_error& e) {
      BOOST_TEST(e.code() == prefork::errc::reload_failed);
      return e.what();
    }
    return "the reload succeeded";
  };
  const auto other = reload_error({{"app", "hello"}});
  BOOST_TEST(other.find(R"("app": a reload cannot change the app (serving "testbed", the file says "hello"))") !=
                 std::string::npos,
             other);
  const auto unknown = reload_error({{"app", "kv"}});
  BOOST_TEST(
      unknown.find(R"("app": unknown app "kv" (this program serves: hello, testbed, echo))") != std::string::npos,
      unknown);
  BOOST_TEST(json_int(server.status(), "generation").value_or(-1) == 1);
  BOOST_TEST(json_string(server.control({{"cmd", "config"}}).as_object(), "app") == "testbed");
  require_clean_stop(server);
}

BOOST_AUTO_TEST_CASE(reload_with_a_broken_config_keeps_the_running_generation) {
  prefork::testing::server server(reload_options());
  auto before = worker_pids(server);
  load_generator load(load_on(server, load_mode::connection_per_request, 8));
  require_load_going(load, 200);

  prefork::testing::write_file(server.directory() / "preforkd.json", "{\"workers\": \"lots\",");  // not even JSON
  server.signal(SIGHUP);
  auto failed = server.wait_for_log("reload failed; the running generation stays", 20s);
  BOOST_REQUIRE_MESSAGE(failed.has_value(), "no \"reload failed\" line\n" << server.log_tail(40));
  BOOST_TEST(!log_string(*failed, "error").empty(), json::serialize(*failed));

  // A file that parses but has an impossible value fails the same way.
  rewrite_config(server, {{"workers", "lots"}});
  server.signal(SIGHUP);
  bool second =
      wait_until([&] { return server.find_log("reload failed; the running generation stays").size() == 2; }, 20s);
  BOOST_REQUIRE_MESSAGE(second, "no second \"reload failed\" line\n" << server.log_tail(40));
  auto second_line = server.find_log("reload failed; the running generation stays")[1];
  BOOST_TEST(log_string(second_line, "error").find("workers") != std::string::npos, json::serialize(second_line));

  require_more_successes(load, 200, "after the failed reloads");
  BOOST_TEST(worker_pids(server) == before, "the workers changed after a failed reload");
  BOOST_TEST(server.find_log("reloading").empty());
  auto reply = whoami(unix_endpoint(server), 5s);
  BOOST_REQUIRE_MESSAGE(reply.has_value(), "whoami: " << reply.error().message());
  BOOST_TEST(reply->generation == 1);
  auto status = server.status();
  BOOST_TEST(json_int(status, "generation").value_or(-1) == 1);
  BOOST_TEST(log_string(status, "state") == "running");
  BOOST_TEST(json_int(server.stats(), "reloads").value_or(-1) == 0);

  // Fixed, the next HUP reloads.
  rewrite_config(server, {});
  server.signal(SIGHUP);
  auto ready = wait_for_generation_log(server, ready_message, 2, reload_timeout);
  BOOST_REQUIRE_MESSAGE(ready.has_value(), "a reload after the failed ones did not happen\n" << server.log_tail(40));
  require_more_successes(load, 200, "after the good reload");
  auto result = load.stop();
  BOOST_TEST_MESSAGE("broken-config reloads under load: " << result.summary());
  require_no_failures(result);
  require_clean_stop(server);
}

BOOST_AUTO_TEST_CASE(two_hups_in_quick_succession_queue_instead_of_stacking) {
  constexpr int attempts = 5;
  prefork::testing::server server(reload_options());
  load_generator load(load_on(server, load_mode::connection_per_request, 12));
  require_load_going(load, 200);

  // A reload takes a few milliseconds here, so the second HUP is sent the moment the first
  // one's "reloading" line appears (pending HUPs would merge into one signal, so it cannot
  // be sent earlier). Whether it then lands while the first reload runs is up to the
  // scheduler: the pair is repeated until the master has queued one.
  long long generation = 1;
  std::size_t queued = 0;
  int pairs = 0;
  while (pairs < attempts && queued == 0) {
    ++pairs;
    server.signal(SIGHUP);
    bool started = wait_for_log_text(server, reloading_text(generation + 1), 20s);
    BOOST_REQUIRE_MESSAGE(started, "no \"reloading\" line for generation " << generation + 1 << "\n"
                                                                           << server.log_tail(40));
    server.signal(SIGHUP);
    auto second_ready = wait_for_generation_log(server, ready_message, generation + 2, 2 * reload_timeout);
    BOOST_REQUIRE_MESSAGE(second_ready.has_value(), "generation " << generation + 2 << " never got ready\n"
                                                                  << server.log_tail(40));
    generation += 2;
    queued = server.find_log("reload queued behind the running one").size();
    // Never stacked: exactly one "reloading" per HUP, and nothing more follows.
    BOOST_TEST(server.find_log("reloading").size() == static_cast<std::size_t>(2 * pairs));
  }
  BOOST_TEST_MESSAGE("HUP pairs sent until one was queued: " << pairs);
  BOOST_TEST(queued == 1u, "no second HUP was queued in " << pairs << " pairs (or more than one was)");
  std::string why;
  bool settled = wait_settled(server, workers, 30s, &why);
  BOOST_REQUIRE_MESSAGE(settled, "not settled after the reloads: " << why << "\n" << server.log_tail(40));
  require_more_successes(load, 200, "after the reloads");

  BOOST_TEST(server.find_log("reloading").size() == static_cast<std::size_t>(2 * pairs));
  BOOST_TEST(server.find_log(ready_message).size() == static_cast<std::size_t>(2 * pairs));
  BOOST_TEST(server.find_log("reload abandoned; the running generation stays").empty());
  BOOST_TEST(json_int(server.status(), "generation").value_or(-1) == generation);
  auto reply = whoami(unix_endpoint(server), 5s);
  BOOST_REQUIRE_MESSAGE(reply.has_value(), "whoami: " << reply.error().message());
  BOOST_TEST(reply->generation == generation);

  auto result = load.stop();
  BOOST_TEST_MESSAGE("HUP pairs under load: " << result.summary());
  require_no_failures(result);
  BOOST_TEST(json_int(server.stats(), "reloads").value_or(-1) == 2 * pairs);
  require_clean_stop(server);
}

BOOST_AUTO_TEST_CASE(reloads_asked_for_while_one_runs_queue_one_at_most) {
  constexpr int attempts = 10;
  prefork::testing::server server(reload_options());
  load_generator load(load_on(server, load_mode::connection_per_request, 8));
  require_load_going(load, 200);

  // Three reload requests reach the master at once: a HUP and a reload request on each of
  // two control connections, all sent while the master is stopped (SIGSTOP), then SIGCONT.
  // Whichever it handles first starts a reload; the next is queued and the last joins the
  // queued one: two reloads, never three. (Should the first reload finish before the
  // master reads the others, which a scheduler may allow, there are three reloads and the
  // round is repeated: one reload per distinct answer holds either way.)
  long long generation = 1;
  bool collapsed = false;
  int rounds = 0;
  while (rounds < attempts && !collapsed) {
    ++rounds;
    auto reloading_before = server.find_log("reloading").size();
    raw_control a;
    raw_control b;
    for (auto* connection : {&a, &b}) {
      BOOST_REQUIRE(connection->connect(server.control_path()));
      BOOST_REQUIRE(connection->send("{\"cmd\":\"ping\"}\n"));
      BOOST_REQUIRE(connection->read_line(5s).has_value());  // its session waits for a request now
    }
    server.signal(SIGSTOP);
    continue_on_exit resume{server};  // SIGCONT on every path, so that cleanup and load end
    bool stopped = wait_until([&] { return process_state(server.pid()) == 'T'; }, 5s, 1ms);
    BOOST_REQUIRE_MESSAGE(stopped, "SIGSTOP did not stop the master");
    server.signal(SIGHUP);
    BOOST_REQUIRE(a.send("{\"cmd\":\"reload\"}\n"));
    BOOST_REQUIRE(b.send("{\"cmd\":\"reload\"}\n"));
    server.signal(SIGCONT);
    std::vector<long long> answers;
    for (auto* connection : {&a, &b}) {
      auto line = connection->read_line(10s);
      BOOST_REQUIRE_MESSAGE(line.has_value(), "no reply to reload\n" << server.log_tail(40));
      auto reply = prefork::parse_control_reply(*line);
      BOOST_REQUIRE_MESSAGE(reply.has_value() && reply->is_object(), "reply: " << *line);
      answers.push_back(json_int(reply->as_object(), "generation").value_or(-1));
    }
    long long last = std::max(answers[0], answers[1]);
    BOOST_TEST_MESSAGE("round " << rounds << ": HUP + 2 reload requests from generation " << generation
                                << "; the requests answered " << answers[0] << " and " << answers[1]);
    for (long long answer : answers) {
      BOOST_TEST((answer > generation && answer <= generation + 3), "answer " << answer);
    }
    auto ready = wait_for_generation_log(server, ready_message, last, 2 * reload_timeout);
    BOOST_REQUIRE_MESSAGE(ready.has_value(), "generation " << last << " never got ready\n" << server.log_tail(40));
    std::string why;
    bool settled = wait_settled(server, workers, 30s, &why);
    BOOST_REQUIRE_MESSAGE(settled, "not settled after the reloads: " << why << "\n" << server.log_tail(40));
    // Nothing more comes: one reload per generation, and no generation beyond the answers.
    std::this_thread::sleep_for(300ms);
    auto reloads_started = static_cast<long long>(server.find_log("reloading").size() - reloading_before);
    auto now = json_int(server.status(), "generation").value_or(-1);
    BOOST_TEST(now == last, "generation " << now << ", answers up to " << last);
    BOOST_TEST(reloads_started == now - generation, "reloads started: " << reloads_started);
    BOOST_TEST(reloads_started >= 2);
    BOOST_TEST(reloads_started <= 3, "three requests stacked " << reloads_started << " reloads");
    collapsed = reloads_started == 2;
    generation = now;
  }
  BOOST_TEST(collapsed, "no round had one of its three requests join a queued reload in " << rounds << " rounds");
  BOOST_TEST(!server.find_log("reload queued behind the running one").empty());

  auto result = load.stop();
  require_no_failures(result);
  require_clean_stop(server);
}

BOOST_AUTO_TEST_CASE(control_reload_with_wait_returns_the_new_generation) {
  prefork::testing::server server(reload_options());
  auto before = worker_pids(server);
  load_generator load(load_on(server, load_mode::connection_per_request, 12));
  require_load_going(load, 200);

  auto started = clock_type::now();
  auto reply = control(server, {{"cmd", "reload"}, {"wait", true}}, reload_timeout);
  auto took = std::chrono::duration_cast<std::chrono::milliseconds>(clock_type::now() - started).count();
  BOOST_REQUIRE_MESSAGE(reply.has_value(), "reload --wait: " << reply.error().message << "\n" << server.log_tail(40));
  BOOST_REQUIRE(reply->is_object());
  BOOST_TEST(json_int(reply->as_object(), "generation").value_or(-1) == 2, json::serialize(*reply));
  BOOST_TEST_MESSAGE("reload --wait answered after " << took << " ms");

  // With wait, the answer comes once the old generation is gone.
  BOOST_TEST(server.find_log(ready_message).size() == 1u);
  for (const auto& record : server.workers()) {
    BOOST_TEST(json_int(record.as_object(), "generation").value_or(-1) == 2, json::serialize(record));
  }
  for (pid_t old : before) BOOST_TEST(!process_alive(old), "old worker " << old << " still alive");
  auto status = server.status();
  BOOST_TEST(json_int(status, "generation").value_or(-1) == 2);
  auto who = whoami(unix_endpoint(server), 5s);
  BOOST_REQUIRE_MESSAGE(who.has_value(), "whoami: " << who.error().message());
  BOOST_TEST(who->generation == 2);

  require_more_successes(load, 200, "after the reload");
  auto result = load.stop();
  BOOST_TEST_MESSAGE("control reload --wait under load: " << result.summary());
  require_no_failures(result);
  require_clean_stop(server);
}

BOOST_AUTO_TEST_CASE(reload_adds_and_removes_a_tcp_listener) {
  prefork::testing::server server(reload_options());
  load_generator load(load_on(server, load_mode::connection_per_request, 8));
  require_load_going(load, 200);

  rewrite_config(server, {{"bind", json::array{"unix:app.sock", "127.0.0.1:0"}}});
  server.signal(SIGHUP);
  auto ready = wait_for_generation_log(server, ready_message, 2, reload_timeout);
  BOOST_REQUIRE_MESSAGE(ready.has_value(), "the reload did not finish\n" << server.log_tail(40));
  auto tcp = listening_endpoint(server, "127.0.0.1:0");
  BOOST_REQUIRE_MESSAGE(tcp.has_value(), "no \"listening\" line for 127.0.0.1:0\n" << server.log_tail(40));
  BOOST_REQUIRE(tcp->type == endpoint::kind::tcp);
  BOOST_TEST(tcp->port != 0);

  auto over_tcp = whoami(*tcp, 5s);
  BOOST_REQUIRE_MESSAGE(over_tcp.has_value(), "whoami over " << tcp->to_string() << ": " << over_tcp.error().message());
  BOOST_TEST(over_tcp->generation == 2);
  {
    load_options tcp_load = load_on(server, load_mode::connection_per_request, 4);
    tcp_load.target = *tcp;
    load_generator on_tcp(tcp_load);
    require_load_going(on_tcp, 200);
    auto tcp_result = on_tcp.stop();
    require_no_failures(tcp_result);
  }
  auto status = server.status();
  BOOST_TEST(status.at("listeners").as_array().size() == 2u, json::serialize(status.at("listeners")));

  // And removed again: after the switch, the port refuses and the Unix socket serves on.
  rewrite_config(server, {});
  server.signal(SIGHUP);
  auto removed = wait_for_generation_log(server, ready_message, 3, reload_timeout);
  BOOST_REQUIRE_MESSAGE(removed.has_value(), "the second reload did not finish\n" << server.log_tail(40));
  bool refused = wait_until(
      [&] {
        http_connection probe;
        return probe.connect(*tcp, 2s) == boost::asio::error::connection_refused;
      },
      10s, 50ms);
  BOOST_TEST(refused, "the removed listener " << tcp->to_string() << " still accepts");
  BOOST_TEST(server.status().at("listeners").as_array().size() == 1u);

  require_more_successes(load, 200, "after the reloads");
  auto result = load.stop();
  require_no_failures(result);
  require_clean_stop(server);
}

BOOST_AUTO_TEST_SUITE_END()
