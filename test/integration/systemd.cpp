// preforkd under systemd's protocols (SPEC section 2): sd_notify messages on a datagram
// socket the test owns (READY, STATUS, RELOADING with MONOTONIC_USEC, STOPPING, WATCHDOG),
// and socket activation: a listener passed as fd 3 with LISTEN_FDS/LISTEN_PID is served,
// and its file is left in place at exit.
#include "prefork/testing.hpp"
#include "support/http_client.hpp"
#include "support/json_fields.hpp"
#include "support/server_helpers.hpp"

#include <boost/json/serialize.hpp>
#include <boost/test/unit_test.hpp>

#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <functional>
#include <sstream>
#include <system_error>
#include <thread>

using namespace prefork::test_support;
using namespace std::chrono_literals;
namespace fs = std::filesystem;
namespace json = boost::json;
using clock_type = std::chrono::steady_clock;

namespace {

constexpr auto request_timeout = 5s;
const std::string hello_body = "Hello, world!\n";

// A bound AF_UNIX datagram socket that plays systemd's notification socket.
class notify_socket {
 public:
  explicit notify_socket(fs::path path) : path_(std::move(path)) {
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) throw std::system_error(errno, std::generic_category(), "socket");
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::strncpy(address.sun_path, path_.c_str(), sizeof address.sun_path - 1);
    if (::bind(fd_, reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0) {
      int error = errno;
      ::close(fd_);
      throw std::system_error(error, std::generic_category(), "bind " + path_.string());
    }
  }
  ~notify_socket() {
    ::close(fd_);
    ::unlink(path_.c_str());
  }
  notify_socket(const notify_socket&) = delete;
  notify_socket& operator=(const notify_socket&) = delete;

  const fs::path& path() const noexcept { return path_; }

  /// The next datagram, or nullopt when none arrives within `timeout`.
  std::optional<std::string> receive(std::chrono::milliseconds timeout) {
    pollfd entry{fd_, POLLIN, 0};
    int ready = ::poll(&entry, 1, static_cast<int>(timeout.count()));
    if (ready != 1) return std::nullopt;
    char buffer[4096];
    ssize_t n = ::recv(fd_, buffer, sizeof buffer, 0);
    if (n < 0) return std::nullopt;
    std::string datagram(buffer, static_cast<std::size_t>(n));
    received_.push_back(datagram);
    return datagram;
  }

  /// Receives until a datagram has a line for which `match` holds; returns that datagram.
  std::optional<std::string> wait_for(const std::function<bool(std::string_view line)>& match,
                                      std::chrono::milliseconds timeout) {
    auto deadline = clock_type::now() + timeout;
    for (;;) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock_type::now());
      if (left.count() <= 0) return std::nullopt;
      auto datagram = receive(left);
      if (!datagram) return std::nullopt;
      for (const auto& line : lines(*datagram)) {
        if (match(line)) return datagram;
      }
    }
  }

  /// wait_for() a line equal to `assignment` ("READY=1").
  std::optional<std::string> wait_for_line(std::string_view assignment, std::chrono::milliseconds timeout) {
    return wait_for([&](std::string_view line) { return line == assignment; }, timeout);
  }

  /// Every datagram received so far, for messages.
  std::string history() const {
    std::string text;
    for (const auto& datagram : received_) {
      std::string shown = datagram;
      std::replace(shown.begin(), shown.end(), '\n', '|');
      text += "  " + shown + "\n";
    }
    return text;
  }

  static std::vector<std::string> lines(const std::string& datagram) {
    std::vector<std::string> result;
    std::istringstream in(datagram);
    std::string line;
    while (std::getline(in, line)) result.push_back(line);
    return result;
  }

 private:
  fs::path path_;
  int fd_ = -1;
  std::vector<std::string> received_;
};

// The value of `NAME=` in a datagram, if one of its lines sets it.
std::optional<std::string> value_of(const std::string& datagram, std::string_view name) {
  for (const auto& line : notify_socket::lines(datagram)) {
    if (line.size() > name.size() && line.starts_with(name) && line[name.size()] == '=') {
      return line.substr(name.size() + 1);
    }
  }
  return std::nullopt;
}

std::uint64_t monotonic_usec_now() {
  timespec now{};
  ::clock_gettime(CLOCK_MONOTONIC, &now);
  return static_cast<std::uint64_t>(now.tv_sec) * 1000000u + static_cast<std::uint64_t>(now.tv_nsec) / 1000u;
}

// A listening AF_UNIX stream socket at `path`, as systemd opens it for a .socket unit.
int listen_unix(const fs::path& path) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw std::system_error(errno, std::generic_category(), "socket");
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::strncpy(address.sun_path, path.c_str(), sizeof address.sun_path - 1);
  if (::bind(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0 || ::listen(fd, 128) != 0) {
    int error = errno;
    ::close(fd);
    throw std::system_error(error, std::generic_category(), "bind/listen " + path.string());
  }
  return fd;
}

struct fd_closer {
  int fd;
  ~fd_closer() {
    if (fd >= 0) ::close(fd);
  }
};

}  // namespace

BOOST_AUTO_TEST_SUITE(systemd)

BOOST_AUTO_TEST_CASE(notify_ready_status_reloading_stopping) {
  prefork::testing::temp_directory notify_dir;
  notify_socket notify(notify_dir / "notify.sock");
  auto options = boost_test_options();
  options.environment.emplace_back("NOTIFY_SOCKET", notify.path().string());
  // Not waiting for `status`: READY=1 itself must mean the server serves.
  options.wait = prefork::testing::start_wait::no_wait;
  prefork::testing::server server(std::move(options));

  auto ready = notify.wait_for_line("READY=1", 20s);
  BOOST_REQUIRE_MESSAGE(ready.has_value(), "no READY=1; received:\n" << notify.history() << server.log_tail(40));
  // READY=1 comes once the first generation is ready: the server serves at once.
  auto response = http_get(unix_endpoint(server), "/", request_timeout);
  BOOST_TEST((response.has_value() && response->status == 200u), "GET / right after READY=1 failed");
  server.wait_ready();
  auto status_line = notify.wait_for([](std::string_view line) { return line.starts_with("STATUS="); }, 5s);
  bool had_status = notify.history().find("STATUS=") != std::string::npos;
  BOOST_TEST(had_status, "no STATUS= message; received:\n" << notify.history());
  BOOST_TEST_MESSAGE("notifications until ready:\n" << notify.history());
  (void)status_line;

  // HUP: RELOADING=1 with MONOTONIC_USEC in the same message, then READY=1.
  BOOST_REQUIRE_NO_THROW(server.signal(SIGHUP));
  auto reloading = notify.wait_for_line("RELOADING=1", 20s);
  BOOST_REQUIRE_MESSAGE(reloading.has_value(), "no RELOADING=1 after HUP; received:\n" << notify.history());
  auto usec_text = value_of(*reloading, "MONOTONIC_USEC");
  BOOST_REQUIRE_MESSAGE(usec_text.has_value(), "RELOADING=1 without MONOTONIC_USEC in its message: " << *reloading);
  std::uint64_t usec = 0;
  auto [end, ec] = std::from_chars(usec_text->data(), usec_text->data() + usec_text->size(), usec);
  BOOST_TEST((ec == std::errc{} && end == usec_text->data() + usec_text->size()), "MONOTONIC_USEC=" << *usec_text);
  std::uint64_t now = monotonic_usec_now();
  BOOST_TEST(usec <= now, "MONOTONIC_USEC is in the future");
  BOOST_TEST(now - usec < 60'000'000u, "MONOTONIC_USEC is not CLOCK_MONOTONIC now: " << usec << " vs " << now);
  auto reloaded = notify.wait_for_line("READY=1", 30s);
  BOOST_TEST(reloaded.has_value(), "no READY=1 after the reload; received:\n" << notify.history());

  // TERM: STOPPING=1, then exit 0.
  BOOST_REQUIRE_NO_THROW(server.signal(SIGTERM));
  auto stopping = notify.wait_for_line("STOPPING=1", 20s);
  BOOST_TEST(stopping.has_value(), "no STOPPING=1 after TERM; received:\n" << notify.history());
  auto status = server.wait_exit(30s);
  BOOST_REQUIRE_MESSAGE(status.has_value(), "no exit after TERM\n" << server.log_tail(40));
  BOOST_TEST(status->code == 0, status->to_string());
  BOOST_TEST_MESSAGE("all notifications:\n" << notify.history());
}

BOOST_AUTO_TEST_CASE(watchdog_pings_at_half_the_interval) {
  prefork::testing::temp_directory notify_dir;
  notify_socket notify(notify_dir / "notify.sock");
  auto options = boost_test_options();
  options.environment.emplace_back("NOTIFY_SOCKET", notify.path().string());
  options.environment.emplace_back("WATCHDOG_USEC", "200000");
  // The pings are counted from READY=1 on, as systemd sees them: no wait on `status` first.
  options.wait = prefork::testing::start_wait::no_wait;
  prefork::testing::server server(std::move(options));
  auto ready = notify.wait_for_line("READY=1", 20s);
  BOOST_REQUIRE_MESSAGE(ready.has_value(), "no READY=1; received:\n" << notify.history() << server.log_tail(40));

  // Nominally one WATCHDOG=1 every 100 ms: 20 in 2 s. A loaded 2-core machine may delay
  // some, so only "repeatedly" is asserted.
  int pings = 0;
  auto first = clock_type::time_point{};
  auto last = clock_type::time_point{};
  auto until = clock_type::now() + 2s;
  while (clock_type::now() < until) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - clock_type::now());
    auto datagram = notify.receive(std::max(left, 1ms));
    if (!datagram) continue;
    for (const auto& line : notify_socket::lines(*datagram)) {
      if (line != "WATCHDOG=1") continue;
      if (pings == 0) first = clock_type::now();
      last = clock_type::now();
      ++pings;
    }
  }
  if (pings > 1) {
    auto mean = std::chrono::duration_cast<std::chrono::milliseconds>(last - first) / (pings - 1);
    BOOST_TEST_MESSAGE(pings << " WATCHDOG=1 in 2 s, mean interval " << mean.count() << " ms");
  }
  BOOST_TEST(pings >= 5, pings << " WATCHDOG=1 in 2 s with WATCHDOG_USEC=200000 (nominally 20)");
  BOOST_TEST(server.running());
}

BOOST_AUTO_TEST_CASE(socket_activation_serves_the_inherited_socket_and_leaves_its_file) {
  prefork::testing::temp_directory sockets;
  const fs::path path = sockets / "activated.sock";
  fd_closer listener{listen_unix(path)};
  auto options = boost_test_options();
  options.config["bind"] = json::array{json::value("unix:" + path.string())};
  options.activation = prefork::testing::socket_activation{{listener.fd}, {"web"}};
  prefork::testing::server server(std::move(options));

  auto response = http_get(endpoint::unix_socket(path), "/", request_timeout);
  BOOST_REQUIRE_MESSAGE(response.has_value(), "GET / on the inherited socket: " << response.error().message());
  BOOST_TEST(response->status == 200u);
  BOOST_TEST(response->body == hello_body);

  auto status = server.status();
  BOOST_TEST_MESSAGE("status: " << json::serialize(status));
  const json::value* listeners = status.if_contains("listeners");
  BOOST_REQUIRE(listeners != nullptr && listeners->is_array());
  BOOST_REQUIRE_EQUAL(listeners->as_array().size(), 1u);
  const auto& only = listeners->as_array().front().as_object();
  BOOST_TEST(json_string(only, "address") == "unix:" + path.string(), json::serialize(only));
  BOOST_TEST(!fs::exists(fs::symlink_status(server.directory() / "app.sock")), "preforkd bound app.sock as well");

  // A reload keeps the inherited socket (the file's `bind` does not replace it).
  BOOST_REQUIRE_NO_THROW(server.signal(SIGHUP));
  auto reloaded_by = clock_type::now() + 30s;
  while (json_int(server.status(), "generation") < 2 && clock_type::now() < reloaded_by) {
    std::this_thread::sleep_for(50ms);
  }
  std::string why;
  BOOST_REQUIRE_MESSAGE(wait_settled(server, 2, 30s, &why), why);
  BOOST_TEST((json_int(server.status(), "generation") == 2));
  auto after_reload = http_get(endpoint::unix_socket(path), "/", request_timeout);
  BOOST_TEST((after_reload.has_value() && after_reload->status == 200u), "GET / after a reload failed");
  BOOST_TEST(!fs::exists(fs::symlink_status(server.directory() / "app.sock")), "the reload bound app.sock");

  BOOST_REQUIRE_NO_THROW(server.signal(SIGTERM));
  auto exited = server.wait_exit(30s);
  BOOST_REQUIRE_MESSAGE(exited.has_value(), "no exit after TERM\n" << server.log_tail(40));
  BOOST_TEST(exited->code == 0, exited->to_string());
  BOOST_TEST(fs::is_socket(fs::symlink_status(path)), "the inherited socket's file was removed at exit");
}

BOOST_AUTO_TEST_CASE(listen_fds_for_another_pid_are_ignored) {
  // LISTEN_PID names another process (the variables leaked from a parent): preforkd binds
  // its configured address and leaves descriptor 3 alone.
  auto options = boost_test_options();
  options.environment = {{"LISTEN_FDS", "1"}, {"LISTEN_PID", "1"}, {"LISTEN_FDNAMES", "web"}};
  prefork::testing::server server(std::move(options));
  auto response = http_get(unix_endpoint(server), "/", request_timeout);
  BOOST_TEST((response.has_value() && response->status == 200u), "GET / on the configured socket failed");
}

BOOST_AUTO_TEST_SUITE_END()
