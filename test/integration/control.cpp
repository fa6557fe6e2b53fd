// The control socket through a real preforkd (SPEC section 3): every command and its
// result, every error code on a connection that stays usable, a foreign user's
// `forbidden` reply, and idle control connections beside service (with the cap on them).
#include "control/control_server.hpp"
#include "prefork/control_client.hpp"
#include "prefork/testing.hpp"
#include "support/http_client.hpp"
#include "support/json_fields.hpp"
#include "support/server_helpers.hpp"
#include "unit_support/preconditions.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/test/unit_test.hpp>

#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <map>
#include <regex>
#include <set>
#include <thread>

using namespace prefork::test_support;
using namespace std::chrono_literals;
namespace fs = std::filesystem;
namespace json = boost::json;
using clock_type = std::chrono::steady_clock;
using prefork::control_client;
using prefork::testing::read_file;

namespace {

constexpr auto call_timeout = 10s;
constexpr auto request_timeout = 5s;

prefork::testing::server_options testbed_options() {
  auto options = boost_test_options();
  options.config["app"] = "testbed";
  return options;
}

bool is_number(const json::value* value) {
  return value != nullptr && (value->is_int64() || value->is_uint64() || value->is_double());
}

bool is_rfc3339_utc(std::string_view text) {
  static const std::regex pattern(R"(^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|\+00:00)$)");
  return std::regex_match(text.begin(), text.end(), pattern);
}

// The error code of a reply line: "" for an ok reply, "<bad reply>" for anything else.
std::string error_code_of(std::string_view line) {
  auto reply = prefork::parse_control_reply(line);
  if (reply) return "";
  if (!prefork::is_remote(reply.error())) return "<bad reply>";
  return std::string(prefork::control_code_name(reply.error().code));
}

template <class Predicate>
bool poll_until(std::chrono::milliseconds timeout, Predicate done) {
  auto deadline = clock_type::now() + timeout;
  for (;;) {
    if (done()) return true;
    if (clock_type::now() >= deadline) return false;
    std::this_thread::sleep_for(20ms);
  }
}

// The worker (id) that answered GET /whoami, or nullopt when the request failed.
std::optional<std::int64_t> whoami(const prefork::testing::server& server) {
  auto response = http_get(unix_endpoint(server), "/whoami", request_timeout);
  if (!response || response->status != 200) return std::nullopt;
  boost::system::error_code ec;
  auto body = json::parse(response->body, ec);
  if (ec || !body.is_object()) return std::nullopt;
  return json_int(body.as_object(), "worker");
}

std::optional<json::object> find_worker(const json::array& workers, std::int64_t id) {
  for (const auto& entry : workers) {
    if (entry.is_object() && json_int(entry.as_object(), "id") == id) return entry.as_object();
  }
  return std::nullopt;
}

// Polls until GET / answers 200 and every worker (each child of the master, `workers` of
// the config) has logged "worker ready". Unlike server.wait_ready() it makes no control
// connection: not even a closed one the master may not have seen go yet. False on
// timeout, with what was seen last in `why`.
bool wait_ready_without_control(prefork::testing::server& server, std::chrono::milliseconds timeout, std::string& why) {
  const auto desired = static_cast<std::size_t>(json_int(server.config(), "workers").value_or(2));
  return poll_until(timeout, [&] {
    auto children = worker_pids(server);
    auto ready_lines = server.find_log("worker ready").size();
    why = std::to_string(children.size()) + " children, " + std::to_string(ready_lines) + " \"worker ready\" lines";
    if (children.size() != desired || ready_lines < desired) return false;
    auto response = http_get(unix_endpoint(server), "/", request_timeout);
    if (!response || response->status != 200) {
      why += response ? ", GET / answered " + std::to_string(response->status) : ", GET / failed";
      return false;
    }
    return true;
  });
}

// The error reply to `request`, sent on a fresh connection. Any other outcome (an ok
// reply, no reply) fails the test.
prefork::failure remote_error(const prefork::testing::server& server, const json::object& request) {
  auto result = prefork::test_support::control(server, request);
  // Built first: the message of BOOST_REQUIRE_MESSAGE may be evaluated before the condition.
  std::string why;
  if (result)
    why = json::serialize(request) + " succeeded with " + json::serialize(*result) + ", expected an error reply";
  else if (!prefork::is_remote(result.error()))
    why = json::serialize(request) + " failed without an error reply: " + result.error().message + "\n" +
          server.log_tail(40);
  BOOST_REQUIRE_MESSAGE(why.empty(), why);
  return result.error();
}

// Waits until the master's workers are `count` ready ones and `gone` is none of them.
bool wait_replaced(prefork::testing::server& server, std::int64_t gone, std::size_t count,
                   std::chrono::milliseconds timeout, std::string& why) {
  return poll_until(timeout, [&] {
    auto children = worker_pids(server);
    if (std::find(children.begin(), children.end(), static_cast<pid_t>(gone)) != children.end()) {
      why = "pid " + std::to_string(gone) + " is still a child of the master";
      return false;
    }
    // One status check: `count` desired and ready, none starting, draining or backing off.
    if (!wait_settled(server, static_cast<int>(count), 0ms, &why)) return false;
    auto workers = server.workers();
    if (workers.size() != count || children.size() != count) {
      why = std::to_string(children.size()) + " children; workers: " + json::serialize(workers);
      return false;
    }
    return true;
  });
}

// A connection to the control socket made with plain system calls, for tests that hold
// many of them or look at what the server sends without asking.
class raw_connection {
 public:
  explicit raw_connection(const fs::path& path) {
    fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) {
      error_ = errno;
      return;
    }
    timeval limit{5, 0};  // bounds connect() on a full backlog, and each read
    ::setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &limit, sizeof limit);
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::strncpy(address.sun_path, path.c_str(), sizeof address.sun_path - 1);
    if (::connect(fd_, reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0) error_ = errno;
  }
  ~raw_connection() { close(); }
  raw_connection(raw_connection&& other) noexcept
      : fd_(std::exchange(other.fd_, -1)), error_(other.error_), pending_(std::move(other.pending_)) {}
  raw_connection(const raw_connection&) = delete;
  raw_connection& operator=(const raw_connection&) = delete;
  raw_connection& operator=(raw_connection&&) = delete;

  /// errno of socket()/connect(), 0 when connected.
  int error() const noexcept { return error_; }
  void close() noexcept {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  /// True when something (data or EOF) can be read now.
  bool readable() const {
    pollfd entry{fd_, POLLIN, 0};
    return fd_ >= 0 && ::poll(&entry, 1, 0) == 1;
  }
  bool send(std::string_view bytes) {
    while (!bytes.empty()) {
      ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (n <= 0) return false;
      bytes.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
  }
  /// Everything until EOF (or a read error or timeout: `eof` says which).
  std::string read_all(bool& eof) {
    std::string text;
    char buffer[4096];
    for (;;) {
      ssize_t n = ::recv(fd_, buffer, sizeof buffer, 0);
      if (n > 0) {
        text.append(buffer, static_cast<std::size_t>(n));
        continue;
      }
      eof = n == 0;
      return text;
    }
  }
  /// One line, without its newline; nullopt on EOF, error or timeout first.
  std::optional<std::string> read_line() {
    for (;;) {
      if (auto end = pending_.find('\n'); end != std::string::npos) {
        std::string line = pending_.substr(0, end);
        pending_.erase(0, end + 1);
        return line;
      }
      char buffer[4096];
      ssize_t n = ::recv(fd_, buffer, sizeof buffer, 0);
      if (n <= 0) return std::nullopt;
      pending_.append(buffer, static_cast<std::size_t>(n));
    }
  }

 private:
  int fd_ = -1;
  int error_ = 0;
  std::string pending_;
};

// What a child process running as another user saw of the control socket.
struct foreign_attempt {
  int connect_error = 0;  // errno of connect(), 0 when it connected
  std::string received;   // what the server sent until it closed
  bool closed = false;    // the server closed the connection (EOF)
  std::string failure;    // the attempt itself went wrong
};

// Forks a child that becomes `uid`/`gid`, connects to `path`, sends a ping and reads until
// the server closes. The child makes only async-signal-safe calls.
foreign_attempt connect_as(const fs::path& path, uid_t uid, gid_t gid) {
  foreign_attempt attempt;
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::strncpy(address.sun_path, path.c_str(), sizeof address.sun_path - 1);
  static constexpr char request[] = "{\"cmd\":\"ping\"}\n";
  int report[2];
  if (::pipe2(report, O_CLOEXEC) != 0) {
    attempt.failure = std::string("pipe2: ") + std::strerror(errno);
    return attempt;
  }
  pid_t child = ::fork();
  if (child < 0) {
    attempt.failure = std::string("fork: ") + std::strerror(errno);
    ::close(report[0]);
    ::close(report[1]);
    return attempt;
  }
  if (child == 0) {
    // Report: [int step][int errno] then the bytes received. Step 0 = connected.
    ::close(report[0]);
    struct sigaction default_action {};
    default_action.sa_handler = SIG_DFL;
    ::sigaction(SIGALRM, &default_action, nullptr);
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // dies with the test
    ::alarm(20);                         // and never outlives a stuck exchange for long
    auto report_step = [&](int step, int error) {
      int header[2] = {step, error};
      [[maybe_unused]] auto n = ::write(report[1], header, sizeof header);
    };
    if (::setgroups(0, nullptr) != 0 || ::setgid(gid) != 0 || ::setuid(uid) != 0) {
      report_step(1, errno);
      ::_exit(1);
    }
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      report_step(2, errno);
      ::_exit(1);
    }
    timeval limit{5, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
    if (::connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0) {
      report_step(3, errno);
      ::_exit(0);
    }
    report_step(0, 0);
    [[maybe_unused]] auto sent = ::send(fd, request, sizeof request - 1, MSG_NOSIGNAL);
    char buffer[4096];
    for (;;) {
      ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
      if (n <= 0) {
        // The server's close is marked by a last 1-byte record 'E': EOF, or ECONNRESET
        // when it closed with our ping unread (Linux resets a Unix stream socket then,
        // after the data it sent has been read). A timeout leaves no mark.
        if (n == 0 || errno == ECONNRESET) [[maybe_unused]]
          auto marked = ::write(report[1],
                                "\x01"
                                "E",
                                2);
        ::_exit(0);
      }
      // Records: one length byte (1..255) and the bytes.
      for (ssize_t offset = 0; offset < n;) {
        unsigned char length = static_cast<unsigned char>(std::min<ssize_t>(n - offset, 255));
        char record[256];
        record[0] = static_cast<char>(length);
        std::memcpy(record + 1, buffer + offset, length);
        [[maybe_unused]] auto written = ::write(report[1], record, length + 1u);
        offset += length;
      }
    }
  }
  ::close(report[1]);
  std::string bytes;
  auto deadline = clock_type::now() + 30s;
  for (;;) {
    pollfd entry{report[0], POLLIN, 0};
    int ready = ::poll(&entry, 1, 100);
    if (ready == 1) {
      char buffer[4096];
      ssize_t n = ::read(report[0], buffer, sizeof buffer);
      if (n > 0) {
        bytes.append(buffer, static_cast<std::size_t>(n));
        continue;
      }
      if (n == 0) break;
    }
    if (clock_type::now() >= deadline) {
      attempt.failure = "the child did not finish within 30 s";
      ::kill(child, SIGKILL);
      break;
    }
  }
  ::close(report[0]);
  int status = 0;
  ::waitpid(child, &status, 0);
  if (!attempt.failure.empty()) return attempt;
  if (bytes.size() < 2 * sizeof(int)) {
    attempt.failure =
        "the child reported nothing (" + prefork::testing::exit_status::from_wait_status(status).to_string() + ")";
    return attempt;
  }
  int header[2];
  std::memcpy(header, bytes.data(), sizeof header);
  if (header[0] == 1 || header[0] == 2) {
    attempt.failure = std::string(header[0] == 1 ? "setuid" : "socket") + ": " + std::strerror(header[1]);
    return attempt;
  }
  if (header[0] == 3) {
    attempt.connect_error = header[1];
    return attempt;
  }
  for (std::size_t offset = sizeof header; offset < bytes.size();) {
    std::size_t length = static_cast<unsigned char>(bytes[offset]);
    if (length == 1 && offset + 2 == bytes.size() && bytes[offset + 1] == 'E') {
      attempt.closed = true;
      break;
    }
    attempt.received.append(bytes, offset + 1, length);
    offset += 1 + length;
  }
  return attempt;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(control)

BOOST_AUTO_TEST_CASE(ping_status_workers_and_config) {
  auto options = testbed_options();
  options.config["bind"] = json::array{"unix:app.sock", "127.0.0.1:0"};
  prefork::testing::server server(std::move(options));  // returns once every worker is ready

  auto pong = server.control({{"cmd", "ping"}});
  BOOST_TEST((pong == json::value("pong")), json::serialize(pong));

  auto status = server.status();
  BOOST_TEST_MESSAGE("status: " << json::serialize(status));
  BOOST_TEST((json_int(status, "pid") == server.pid()), json::serialize(status));
  BOOST_TEST(!json_string(status, "version").empty(), json::serialize(status));
  BOOST_TEST(is_number(status.if_contains("uptime_s")), "uptime_s is not a number: " << json::serialize(status));
  if (auto uptime = status.if_contains("uptime_s"); is_number(uptime)) BOOST_TEST(uptime->to_number<double>() >= 0.0);
  BOOST_TEST((json_int(status, "generation") >= 1), json::serialize(status));
  BOOST_TEST(json_string(status, "state") == "running", json::serialize(status));
  BOOST_TEST(json_string(status, "dispatch") == "least-connections", json::serialize(status));
  BOOST_REQUIRE_MESSAGE(status.contains("workers") && status.at("workers").is_object(), json::serialize(status));
  const auto& counts = status.at("workers").as_object();
  BOOST_TEST((json_int(counts, "desired") == 2), json::serialize(counts));
  BOOST_TEST((json_int(counts, "ready") == 2), json::serialize(counts));
  BOOST_TEST((json_int(counts, "starting") == 0), json::serialize(counts));
  BOOST_TEST((json_int(counts, "draining") == 0), json::serialize(counts));

  // Listeners in bind syntax: the Unix one absolute, the TCP one with its real port.
  BOOST_REQUIRE_MESSAGE(status.contains("listeners") && status.at("listeners").is_array(), json::serialize(status));
  const auto& listeners = status.at("listeners").as_array();
  BOOST_REQUIRE_EQUAL(listeners.size(), 2u);
  std::map<std::string, std::string> address_of;
  for (const auto& entry : listeners) {
    BOOST_REQUIRE(entry.is_object());
    address_of[json_string(entry.as_object(), "bind")] = json_string(entry.as_object(), "address");
  }
  BOOST_TEST(address_of["unix:app.sock"] == "unix:" + (server.directory() / "app.sock").string(),
             json::serialize(listeners));
  const std::string tcp = address_of["127.0.0.1:0"];
  BOOST_TEST(tcp.starts_with("127.0.0.1:"), json::serialize(listeners));
  auto tcp_endpoint = endpoint::parse(tcp);
  BOOST_REQUIRE_MESSAGE(tcp_endpoint.has_value(), "not in bind syntax: " << tcp);
  BOOST_TEST(tcp_endpoint->port != 0);
  auto via_tcp = http_get(*tcp_endpoint, "/", request_timeout);
  BOOST_REQUIRE_MESSAGE(via_tcp.has_value(), "GET / on the reported TCP address: " << via_tcp.error().message());
  BOOST_TEST(via_tcp->status == 200u);

  // Workers: one entry per child, with the documented fields and types.
  auto workers = server.workers();
  BOOST_TEST_MESSAGE("workers: " << json::serialize(workers));
  BOOST_REQUIRE_EQUAL(workers.size(), 2u);
  auto children = worker_pids(server);
  std::set<std::int64_t> ids;
  static const std::set<std::string> states{"starting", "ready", "draining", "paused", "backoff"};
  for (const auto& entry : workers) {
    BOOST_REQUIRE(entry.is_object());
    const auto& worker = entry.as_object();
    const std::string text = json::serialize(worker);
    auto id = json_int(worker, "id");
    BOOST_REQUIRE_MESSAGE(id.has_value(), text);
    ids.insert(*id);
    auto pid = json_int(worker, "pid");
    BOOST_REQUIRE_MESSAGE(pid.has_value(), text);
    BOOST_TEST((std::find(children.begin(), children.end(), static_cast<pid_t>(*pid)) != children.end()),
               "pid is not a child of the master: " << text);
    BOOST_TEST((json_int(worker, "generation") >= 1), text);
    BOOST_TEST(states.count(json_string(worker, "state")) == 1u, text);
    BOOST_TEST(json_string(worker, "state") == "ready", text);
    BOOST_TEST((json_int(worker, "active") >= 0), text);
    BOOST_TEST((json_int(worker, "served") >= 0), text);
    BOOST_TEST(is_rfc3339_utc(json_string(worker, "started_at")), "started_at is not RFC 3339 UTC: " << text);
    BOOST_TEST((json_int(worker, "last_heartbeat_ms") >= 0), text);
    BOOST_TEST((json_int(worker, "rss_bytes") > 0), text);
  }
  BOOST_TEST(ids.size() == 2u, "worker ids are not distinct: " << json::serialize(workers));

  // The effective configuration, with `workers` resolved.
  auto config = server.control({{"cmd", "config"}});
  BOOST_REQUIRE_MESSAGE(config.is_object(), json::serialize(config));
  BOOST_TEST((json_int(config.as_object(), "workers") == 2), json::serialize(config));
  BOOST_TEST(json_string(config.as_object(), "app") == "testbed", json::serialize(config));
  BOOST_TEST(json_string(config.as_object(), "control").ends_with("ctl.sock"), json::serialize(config));
}

BOOST_AUTO_TEST_CASE(stats_count_requests_across_workers) {
  prefork::testing::server server(testbed_options());
  auto before = server.stats();
  BOOST_TEST_MESSAGE("stats before: " << json::serialize(before));
  for (std::string_view key :
       {"accepted", "dispatched", "redispatched", "migrated", "lost", "accept_pauses", "worker_exits", "worker_crashes",
        "worker_timeouts", "worker_recycled", "reloads", "requests"}) {
    BOOST_TEST((json_int(before, key) >= 0),
               "stats." << key << " missing or not an integer: " << json::serialize(before));
  }
  constexpr int requests = 30;
  for (int i = 0; i < requests; ++i) {
    auto response = http_get(unix_endpoint(server), "/", request_timeout);
    BOOST_REQUIRE_MESSAGE(response.has_value(), "GET / #" << i << ": " << response.error().message());
    BOOST_REQUIRE_EQUAL(response->status, 200u);
  }
  // Requests reach the master with the workers' heartbeats: poll.
  json::object after;
  bool counted = poll_until(15s, [&] {
    after = server.stats();
    return json_int(after, "requests") >= json_int(before, "requests").value_or(0) + requests;
  });
  BOOST_TEST_MESSAGE("stats after: " << json::serialize(after));
  BOOST_TEST(counted, "stats.requests did not count " << requests << " requests: " << json::serialize(after));
  BOOST_TEST((json_int(after, "accepted") >= json_int(before, "accepted").value_or(0) + requests),
             json::serialize(after));
  BOOST_TEST((json_int(after, "dispatched") >= json_int(before, "dispatched").value_or(0) + requests),
             json::serialize(after));
  BOOST_TEST((json_int(after, "lost") == 0), json::serialize(after));
  BOOST_TEST((json_int(after, "worker_crashes") == 0), json::serialize(after));
}

BOOST_AUTO_TEST_CASE(scale_up_and_down) {
  prefork::testing::server server(testbed_options());
  auto up = server.control({{"cmd", "scale"}, {"workers", 3}});
  BOOST_TEST((up == json::value(json::object{{"desired", 3}})), json::serialize(up));
  // 3 ready (none starting or draining) and 3 children of the master.
  std::string why;
  BOOST_TEST(wait_settled(server, 3, 30s, &why), "not 3 ready workers: " << why);
  BOOST_TEST(worker_pids(server).size() == 3u,
             "the master has " << worker_pids(server).size() << " children, expected 3");
  auto down = server.control({{"cmd", "scale"}, {"workers", 1}});
  BOOST_TEST((down == json::value(json::object{{"desired", 1}})), json::serialize(down));
  BOOST_TEST(wait_settled(server, 1, 40s, &why), "not 1 ready worker: " << why);
  BOOST_TEST(worker_pids(server).size() == 1u,
             "the master has " << worker_pids(server).size() << " children, expected 1");
  BOOST_TEST(server.workers().size() == 1u);
  auto response = http_get(unix_endpoint(server), "/", request_timeout);
  BOOST_TEST((response.has_value() && response->status == 200u), "GET / after scaling down failed");

  for (const json::value& bad : {json::value(0), json::value(-1), json::value("four"), json::value(1.5)}) {
    auto error = remote_error(server, {{"cmd", "scale"}, {"workers", bad}});
    BOOST_TEST(error.code == prefork::errc::bad_request,
               "scale " << json::serialize(bad) << ": " << error.code << " " << error.message);
  }
  auto missing = remote_error(server, {{"cmd", "scale"}});
  BOOST_TEST(missing.code == prefork::errc::bad_request, missing.message);
}

BOOST_AUTO_TEST_CASE(reload_without_and_with_wait) {
  prefork::testing::server server(testbed_options());
  auto first_generation = json_int(server.status(), "generation");
  BOOST_REQUIRE(first_generation.has_value());

  // Without wait: answered at once with the new generation's number.
  auto started = server.control({{"cmd", "reload"}});
  BOOST_REQUIRE_MESSAGE(started.is_object(), json::serialize(started));
  auto second = json_int(started.as_object(), "generation");
  BOOST_TEST((second == *first_generation + 1), json::serialize(started));
  // Every worker ready (none starting or draining), and the old generation's exited.
  std::string why;
  BOOST_REQUIRE_MESSAGE(wait_settled(server, 2, 50s, &why), why << "\n" << server.log_tail(40));

  // With wait: once answered, the new generation serves and the old one is gone.
  auto old_pids = worker_pids(server);
  auto waited_reply = prefork::test_support::control(server, {{"cmd", "reload"}, {"wait", true}}, 60s);
  BOOST_REQUIRE_MESSAGE(waited_reply.has_value(), "reload --wait: " << waited_reply.error().code << " "
                                                                    << waited_reply.error().message << "\n"
                                                                    << server.log_tail(40));
  const json::value& waited = *waited_reply;
  BOOST_REQUIRE_MESSAGE(waited.is_object(), json::serialize(waited));
  auto third = json_int(waited.as_object(), "generation");
  BOOST_REQUIRE_MESSAGE(third.has_value() && second.has_value() && *third == *second + 1, json::serialize(waited));
  auto status = server.status();
  BOOST_TEST((json_int(status, "generation") == *third), json::serialize(status));
  auto workers = server.workers();
  BOOST_TEST(workers.size() == 2u, json::serialize(workers));
  for (const auto& entry : workers) {
    BOOST_TEST((json_int(entry.as_object(), "generation") == *third),
               "an old worker is listed after reload --wait: " << json::serialize(workers));
    BOOST_TEST(json_string(entry.as_object(), "state") == "ready", json::serialize(workers));
  }
  for (pid_t old_pid : old_pids) {
    auto children = worker_pids(server);
    BOOST_TEST((std::find(children.begin(), children.end(), old_pid) == children.end()),
               "old worker " << old_pid << " is still a child after reload --wait");
  }
  auto body = http_get(unix_endpoint(server), "/whoami", request_timeout);
  BOOST_REQUIRE(body.has_value());
  BOOST_TEST(body->body.find("\"generation\":" + std::to_string(*third)) != std::string::npos, body->body);
  auto stats = server.stats();
  BOOST_TEST((json_int(stats, "reloads") == 2), json::serialize(stats));
  BOOST_TEST((json_int(stats, "lost") == 0), json::serialize(stats));

  auto bad = remote_error(server, {{"cmd", "reload"}, {"wait", "yes"}});
  BOOST_TEST(bad.code == prefork::errc::bad_request, bad.message);
}

BOOST_AUTO_TEST_CASE(stop_graceful_exits_0) {
  prefork::testing::server server(testbed_options());
  auto reply = server.control({{"cmd", "stop"}});
  BOOST_TEST((reply == json::value(json::object{})), json::serialize(reply));
  auto status = server.wait_exit(30s);
  BOOST_REQUIRE_MESSAGE(status.has_value(), "no exit after stop\n" << server.log_tail(40));
  BOOST_TEST(status->code == 0, status->to_string());
  BOOST_TEST(wait_group_gone(server.pid()));
  BOOST_TEST(!fs::exists(fs::symlink_status(server.directory() / "ctl.sock")),
             "the control socket file is still there");
}

BOOST_AUTO_TEST_CASE(stop_fast_exits_0) {
  prefork::testing::server server(testbed_options());
  auto bad = remote_error(server, {{"cmd", "stop"}, {"graceful", "no"}});
  BOOST_TEST(bad.code == prefork::errc::bad_request, bad.message);
  BOOST_REQUIRE(server.running());
  // A slow request in flight: a fast stop does not wait for it.
  http_connection slow;
  BOOST_REQUIRE(!slow.connect(unix_endpoint(server), request_timeout));
  BOOST_REQUIRE(!slow.send(make_request("GET", "/sleep?ms=30000"), request_timeout));
  std::this_thread::sleep_for(200ms);
  auto reply = server.control({{"cmd", "stop"}, {"graceful", false}});
  BOOST_TEST((reply == json::value(json::object{})), json::serialize(reply));
  auto status = server.wait_exit(15s);
  BOOST_REQUIRE_MESSAGE(status.has_value(), "no exit after a fast stop\n" << server.log_tail(40));
  BOOST_TEST(status->code == 0, status->to_string());
  BOOST_TEST(wait_group_gone(server.pid()));
}

BOOST_AUTO_TEST_CASE(kill_worker_term_and_kill_are_replaced) {
  prefork::testing::server server(testbed_options());
  std::this_thread::sleep_for(1500ms);  // past restart.min_uptime_ms: no worker "dies young"
  for (const char* signal_name : {"TERM", "KILL"}) {
    BOOST_TEST_CONTEXT("signal " << signal_name) {
      auto workers = server.workers();
      BOOST_REQUIRE(!workers.empty());
      const auto& victim = workers.front().as_object();
      auto id = json_int(victim, "id");
      auto pid = json_int(victim, "pid");
      BOOST_REQUIRE(id && pid);
      auto reply = server.control({{"cmd", "kill_worker"}, {"id", *id}, {"signal", signal_name}});
      BOOST_TEST((reply == json::value(json::object{{"pid", *pid}})), json::serialize(reply));
      std::string why;
      BOOST_TEST(wait_replaced(server, *pid, 2, 20s, why),
                 "worker " << *id << " (pid " << *pid << ") was not replaced: " << why);
      auto response = http_get(unix_endpoint(server), "/", request_timeout);
      BOOST_TEST((response.has_value() && response->status == 200u), "GET / after kill_worker failed");
      std::this_thread::sleep_for(1500ms);
    }
  }
  auto stats = server.stats();
  BOOST_TEST_MESSAGE("stats: " << json::serialize(stats));
  BOOST_TEST((json_int(stats, "worker_exits") >= 2), json::serialize(stats));
  BOOST_TEST((json_int(stats, "worker_crashes") == 0), "kill_worker counted as a crash: " << json::serialize(stats));
  BOOST_TEST((json_int(stats, "lost") == 0), json::serialize(stats));

  auto bad_signal = remote_error(server, {{"cmd", "kill_worker"}, {"id", 1}, {"signal", "HUP"}});
  BOOST_TEST(bad_signal.code == prefork::errc::bad_request, bad_signal.message);
}

BOOST_AUTO_TEST_CASE(paused_worker_gets_no_new_connections_until_resumed) {
  prefork::testing::server server(testbed_options());
  auto workers = server.workers();
  BOOST_REQUIRE_EQUAL(workers.size(), 2u);
  auto paused_id = json_int(workers.front().as_object(), "id");
  BOOST_REQUIRE(paused_id.has_value());

  // A keep-alive connection on the worker to be paused: it keeps being served there.
  http_connection kept;
  std::optional<std::int64_t> kept_worker;
  for (int attempt = 0; attempt < 20 && kept_worker != paused_id; ++attempt) {
    BOOST_REQUIRE(!kept.connect(unix_endpoint(server), request_timeout));
    auto response = kept.request("GET", "/whoami", request_timeout);
    BOOST_REQUIRE_MESSAGE(response.has_value(), response.error().message());
    boost::system::error_code ec;
    auto body = json::parse(response->body, ec);
    if (!ec && body.is_object()) kept_worker = json_int(body.as_object(), "worker");
  }
  BOOST_REQUIRE_MESSAGE(kept_worker == paused_id, "no connection landed on worker " << *paused_id << " in 20 tries");

  auto reply = server.control({{"cmd", "pause_worker"}, {"id", *paused_id}});
  BOOST_TEST((reply == json::value(json::object{})), json::serialize(reply));
  auto paused = find_worker(server.workers(), *paused_id);
  BOOST_REQUIRE(paused.has_value());
  BOOST_TEST(json_string(*paused, "state") == "paused", json::serialize(*paused));

  // The paused worker keeps serving the connection it has.
  auto on_kept = kept.request("GET", "/whoami", request_timeout);
  BOOST_REQUIRE_MESSAGE(on_kept.has_value(), "the paused worker's connection failed: " << on_kept.error().message());
  BOOST_TEST(on_kept->body.find("\"worker\":" + std::to_string(*paused_id) + ",") != std::string::npos, on_kept->body);
  // Closed, so that the paused worker has the fewest connections: least-connections
  // would pick it for every new connection if pausing did not exclude it.
  kept.close();
  std::this_thread::sleep_for(500ms);

  constexpr int requests = 40;
  for (int i = 0; i < requests; ++i) {
    auto worker = whoami(server);
    BOOST_REQUIRE_MESSAGE(worker.has_value(), "GET /whoami #" << i << " failed while a worker is paused");
    BOOST_TEST(*worker != *paused_id, "request #" << i << " went to the paused worker " << *paused_id);
  }

  auto again = remote_error(server, {{"cmd", "pause_worker"}, {"id", *paused_id}});
  BOOST_TEST(again.code == prefork::errc::bad_request,
             "pausing a paused worker: " << again.code << " " << again.message);

  reply = server.control({{"cmd", "resume_worker"}, {"id", *paused_id}});
  BOOST_TEST((reply == json::value(json::object{})), json::serialize(reply));
  auto resumed = find_worker(server.workers(), *paused_id);
  BOOST_REQUIRE(resumed.has_value());
  BOOST_TEST(json_string(*resumed, "state") == "ready", json::serialize(*resumed));
  int served_by_resumed = 0;
  for (int i = 0; i < requests; ++i) {
    auto worker = whoami(server);
    BOOST_REQUIRE_MESSAGE(worker.has_value(), "GET /whoami #" << i << " failed after resume");
    if (*worker == *paused_id) ++served_by_resumed;
  }
  BOOST_TEST(served_by_resumed > 0, "the resumed worker got none of " << requests << " connections");

  auto not_paused = remote_error(server, {{"cmd", "resume_worker"}, {"id", *paused_id}});
  BOOST_TEST(not_paused.code == prefork::errc::bad_request,
             "resuming a ready worker: " << not_paused.code << " " << not_paused.message);
}

BOOST_AUTO_TEST_CASE(reopen_logs_reopens_the_log_file) {
  auto options = testbed_options();
  options.config["log"] = json::object{{"format", "json"}, {"level", "info"}, {"file", "preforkd.log"}};
  // Ready once constructed: the harness asks `status`, it reads no log.
  prefork::testing::server server(std::move(options));
  const fs::path log = server.directory() / "preforkd.log";
  const fs::path rotated = server.directory() / "preforkd.log.1";
  BOOST_REQUIRE(fs::exists(log));
  fs::rename(log, rotated);  // what logrotate does before it signals

  auto reply = server.control({{"cmd", "reopen_logs"}});
  BOOST_TEST((reply == json::value(json::object{})), json::serialize(reply));
  bool reopened = poll_until(5s, [&] { return read_file(log).find("log files reopened") != std::string::npos; });
  BOOST_TEST(reopened, "no \"log files reopened\" line in a new preforkd.log; it holds: " << read_file(log));
  BOOST_TEST(read_file(rotated).find("worker ready") != std::string::npos, "the rotated file lost the earlier lines");
  // Later lines go to the new file too.
  server.control({{"cmd", "scale"}, {"workers", 2}});
  bool later = poll_until(5s, [&] { return read_file(log).find("\"control request\"") != std::string::npos; });
  BOOST_TEST(later, "a later line did not reach the new file: " << read_file(log));
}

BOOST_AUTO_TEST_CASE(every_error_code_keeps_the_connection_usable) {
  prefork::testing::server server(testbed_options());
  control_client client;
  auto connected = client.connect(server.control_path(), call_timeout);
  BOOST_REQUIRE_MESSAGE(connected.has_value(), connected.error().message);

  struct bad_line {
    std::string bytes;
    std::string code;
  };
  const std::vector<bad_line> cases{
      {"this is not json\n", "bad_json"},
      {"{\"cmd\":\"ping\"\n", "bad_json"},
      {"\n", "bad_json"},
      {"[\"ping\"]\n", "bad_request"},
      {"{}\n", "bad_request"},
      {"{\"workers\":3}\n", "bad_request"},
      {"{\"cmd\":5}\n", "bad_request"},
      {"{\"cmd\":null}\n", "bad_request"},
      {"{\"cmd\":[\"ping\"]}\n", "bad_request"},
      {"{\"cmd\":\"frobnicate\"}\n", "unknown_command"},
      {"{\"cmd\":\"kill_worker\",\"id\":999,\"signal\":\"TERM\"}\n", "not_found"},
      {"{\"cmd\":\"kill_worker\",\"id\":999,\"signal\":\"KILL\"}\n", "not_found"},
      {"{\"cmd\":\"pause_worker\",\"id\":999}\n", "not_found"},
      {"{\"cmd\":\"resume_worker\",\"id\":999}\n", "not_found"},
      {"{\"cmd\":\"kill_worker\"}\n", "bad_request"},
      {"{\"cmd\":\"pause_worker\",\"id\":\"one\"}\n", "bad_request"},
  };
  for (const auto& bad : cases) {
    auto line = client.call_raw(bad.bytes, call_timeout);
    BOOST_REQUIRE_MESSAGE(line.has_value(), "no reply to " << bad.bytes << ": " << line.error().message);
    BOOST_TEST(error_code_of(*line) == bad.code, "sent " << bad.bytes << "got " << *line);
    auto pong = client.call({{"cmd", "ping"}}, call_timeout);
    BOOST_REQUIRE_MESSAGE(pong.has_value(),
                          "the connection is unusable after " << bad.bytes << ": " << pong.error().message);
    BOOST_TEST((*pong == json::value("pong")));
  }
  // Several requests in one write are answered in order.
  auto first = client.call_raw("{\"cmd\":\"nope\"}\n{\"cmd\":\"ping\"}\n", call_timeout);
  BOOST_REQUIRE(first.has_value());
  BOOST_TEST(error_code_of(*first) == "unknown_command", *first);
  auto second = client.read_line(call_timeout);
  BOOST_REQUIRE(second.has_value());
  BOOST_TEST(error_code_of(*second) == "", *second);

  BOOST_TEST(server.running());
  auto response = http_get(unix_endpoint(server), "/", request_timeout);
  BOOST_TEST((response.has_value() && response->status == 200u), "service after bad control requests");
  BOOST_TEST((json_int(server.stats(), "worker_crashes") == 0));
}

BOOST_AUTO_TEST_CASE(too_large_line_then_the_connection_goes_on) {
  prefork::testing::server server(testbed_options());
  control_client client;
  auto connected = client.connect(server.control_path(), call_timeout);
  BOOST_REQUIRE_MESSAGE(connected.has_value(), connected.error().message);

  // 70 KiB: a valid request padded past the 64 KiB limit.
  std::string big = "{\"cmd\":\"ping\",\"pad\":\"" + std::string(70 * 1024, 'x') + "\"}\n";
  auto line = client.call_raw(big, call_timeout);
  BOOST_REQUIRE_MESSAGE(line.has_value(), "no reply to a 70 KiB line: " << line.error().message);
  BOOST_TEST(error_code_of(*line) == "too_large", *line);
  // The rest of the long line was discarded: the next reply is the ping's, not another error.
  auto pong = client.call({{"cmd", "ping"}}, call_timeout);
  BOOST_REQUIRE_MESSAGE(pong.has_value(), "after too_large: " << pong.error().message);
  BOOST_TEST((*pong == json::value("pong")));

  // A line just under the limit is still a request.
  std::string fits = "{\"cmd\":\"ping\",\"pad\":\"" + std::string(60 * 1024, 'x') + "\"}\n";
  auto near = client.call_raw(fits, call_timeout);
  BOOST_REQUIRE(near.has_value());
  BOOST_TEST(error_code_of(*near) == "", "a 60 KiB request: " << near->substr(0, 200));
  BOOST_TEST(server.running());
}

BOOST_AUTO_TEST_CASE(foreign_user_is_forbidden_and_logged,
                     *boost::unit_test::precondition(prefork::unit_support::running_as_root{
                         "to run a client as another user"})) {
  constexpr uid_t nobody = 65534;
  constexpr gid_t nogroup = 65534;
  prefork::testing::server server(testbed_options());
  const fs::path socket = server.control_path();
  struct stat info {};
  BOOST_REQUIRE(::stat(socket.c_str(), &info) == 0);
  BOOST_TEST((info.st_mode & 0777) == 0600u, "control socket mode " << std::oct << (info.st_mode & 0777));

  // The test dir is 0700: let the other user reach the socket file.
  fs::permissions(server.directory(), fs::perms(0755), fs::perm_options::replace);
  // With the socket at 0600 the kernel refuses the connection before preforkd sees it.
  auto refused = connect_as(socket, nobody, nogroup);
  BOOST_REQUIRE_MESSAGE(refused.failure.empty(), refused.failure);
  BOOST_TEST(refused.connect_error == EACCES,
             "connect as uid 65534 to a 0600 socket: " << (refused.connect_error ? std::strerror(refused.connect_error)
                                                                                 : "it connected"));

  // Opened up, the connection reaches preforkd, which answers `forbidden` and closes.
  fs::permissions(socket, fs::perms(0666), fs::perm_options::replace);
  auto attempt = connect_as(socket, nobody, nogroup);
  fs::permissions(socket, fs::perms(0600), fs::perm_options::replace);
  fs::permissions(server.directory(), fs::perms(0700), fs::perm_options::replace);
  BOOST_REQUIRE_MESSAGE(attempt.failure.empty(), attempt.failure);
  BOOST_REQUIRE_MESSAGE(attempt.connect_error == 0,
                        "connect as uid 65534 to a 0666 socket: " << std::strerror(attempt.connect_error));
  BOOST_TEST_MESSAGE("foreign user received: " << attempt.received);
  BOOST_TEST(attempt.closed, "the server did not close the foreign connection; received: " << attempt.received);
  BOOST_TEST(attempt.received.ends_with("\n"), "no whole line: " << attempt.received);
  auto first_line = attempt.received.substr(0, attempt.received.find('\n'));
  BOOST_TEST(error_code_of(first_line) == "forbidden", "received: " << attempt.received);
  BOOST_TEST(attempt.received.find("pong") == std::string::npos, "the foreign ping was answered: " << attempt.received);

  auto logged = server.wait_for_log("control connection forbidden", 5s, [&](const json::object& line) {
    return log_int(line, "uid") == static_cast<long long>(nobody);
  });
  BOOST_TEST(logged.has_value(), "no \"control connection forbidden\" line with uid 65534\n" << server.log_tail(40));
  if (logged) BOOST_TEST(log_string(*logged, "level").starts_with("warn"), json::serialize(*logged));

  // Our own user goes on.
  auto pong = server.control({{"cmd", "ping"}});
  BOOST_TEST((pong == json::value("pong")));
  BOOST_TEST(server.running());
}

BOOST_AUTO_TEST_CASE(idle_control_connections_do_not_affect_service) {
  constexpr std::size_t idle = 200;
  const std::size_t cap = prefork::detail::control_server_options{}.max_connections;
  BOOST_REQUIRE_LT(cap, idle);
  // Waited for here, not by the harness: its own control connection (which wait_ready
  // and server.control keep open) would take one of the `cap` places.
  auto options = testbed_options();
  options.wait = prefork::testing::start_wait::no_wait;
  prefork::testing::server server(std::move(options));
  std::string why;
  BOOST_REQUIRE_MESSAGE(wait_ready_without_control(server, 20s, why), why << "\n" << server.log_tail(40));
  const fs::path socket = server.control_path();

  std::vector<raw_connection> connections;
  connections.reserve(idle);
  for (std::size_t i = 0; i < idle; ++i) {
    connections.emplace_back(socket);
    BOOST_REQUIRE_MESSAGE(connections.back().error() == 0,
                          "control connection #" << i << ": " << std::strerror(connections.back().error()));
  }
  // Beyond the cap each connection gets one error line and is closed; the others stay
  // open and quiet.
  auto count_readable = [&] {
    return static_cast<std::size_t>(
        std::count_if(connections.begin(), connections.end(), [](const raw_connection& c) { return c.readable(); }));
  };
  bool settled = poll_until(10s, [&] { return count_readable() >= idle - cap; });
  std::this_thread::sleep_for(200ms);  // and no more than that
  const std::size_t refused = count_readable();
  BOOST_TEST(settled, refused << " connections were answered, expected " << idle - cap);
  BOOST_TEST(refused == idle - cap, refused << " of " << idle << " connections were refused with a cap of " << cap);
  std::vector<std::size_t> served;
  for (std::size_t i = 0; i < idle; ++i) {
    if (!connections[i].readable()) {
      served.push_back(i);
      continue;
    }
    bool eof = false;
    std::string text = connections[i].read_all(eof);
    BOOST_TEST(eof, "refused connection #" << i << " was not closed");
    auto line = text.substr(0, text.find('\n'));
    auto code = error_code_of(line);
    BOOST_TEST((!code.empty() && code != "<bad reply>"), "refused connection #" << i << " got: " << text);
    BOOST_TEST(line.find("too many") != std::string::npos, "refused connection #" << i << " got: " << text);
    connections[i].close();
  }
  BOOST_REQUIRE_EQUAL(served.size(), cap);

  // Service with every held connection open.
  for (int i = 0; i < 50; ++i) {
    auto response = http_get(unix_endpoint(server), "/", request_timeout);
    BOOST_REQUIRE_MESSAGE(response.has_value(),
                          "GET / #" << i << " with idle control connections: " << response.error().message());
    BOOST_REQUIRE_EQUAL(response->status, 200u);
  }
  // A held connection answers.
  auto& held = connections[served.front()];
  BOOST_REQUIRE(held.send("{\"cmd\":\"ping\"}\n"));
  auto pong = held.read_line();
  BOOST_REQUIRE_MESSAGE(pong.has_value(), "no reply on a held control connection");
  BOOST_TEST(*pong == "{\"ok\":true,\"result\":\"pong\"}");
  // One more is refused with an error line while all are held ...
  raw_connection extra(socket);
  BOOST_REQUIRE_EQUAL(extra.error(), 0);
  auto refusal = extra.read_line();
  BOOST_REQUIRE_MESSAGE(refusal.has_value(), "no refusal line for a connection over the cap");
  const std::string refusal_code = error_code_of(*refusal);
  BOOST_TEST((!refusal_code.empty() && refusal_code != "<bad reply>"), *refusal);
  BOOST_TEST(refusal->find("too many") != std::string::npos, *refusal);
  // ... and accepted once a held one goes away.
  connections[served.back()].close();
  bool accepted = poll_until(10s, [&] {
    auto ping = prefork::control_call(socket, {{"cmd", "ping"}}, 2s);
    return ping.has_value();
  });
  BOOST_TEST(accepted, "no control connection was served after one of the held ones closed");
  BOOST_TEST(server.running());
}

BOOST_AUTO_TEST_SUITE_END()
