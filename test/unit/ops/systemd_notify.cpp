// systemd_notifier against real AF_UNIX datagram sockets (a path and an abstract name)
// standing in for the service manager, and the parsing of the watchdog variables.
#include "ops/systemd_notify.hpp"

#include "unit_support/temp_dir.hpp"

#include <boost/system/errc.hpp>
#include <boost/test/unit_test.hpp>

#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace {

using prefork::detail::monotonic_usec_now;
using prefork::detail::reloading_message;
using prefork::detail::systemd_notifier;
namespace errc = boost::system::errc;
using namespace std::chrono_literals;

constexpr std::array<const char*, 3> notify_variables{"NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"};

// Sets the variables a test names and restores the previous values of all three at the end.
class environment_guard {
 public:
  environment_guard() {
    for (const char* name : notify_variables) {
      const char* value = std::getenv(name);
      saved_.push_back(value ? std::optional<std::string>(value) : std::nullopt);
      ::unsetenv(name);
    }
  }
  ~environment_guard() {
    for (std::size_t i = 0; i < notify_variables.size(); ++i) {
      if (saved_[i]) {
        ::setenv(notify_variables[i], saved_[i]->c_str(), 1);
      } else {
        ::unsetenv(notify_variables[i]);
      }
    }
  }
  environment_guard(const environment_guard&) = delete;
  environment_guard& operator=(const environment_guard&) = delete;

  void set(const char* name, const std::string& value) { ::setenv(name, value.c_str(), 1); }

 private:
  std::vector<std::optional<std::string>> saved_;
};

using prefork::unit_support::temp_dir;

// The service manager's end: a bound datagram socket, read without blocking (a datagram
// sent to a Unix socket is queued before sendto returns).
class fake_manager {
 public:
  /// Binds `name`: a path, or "@name" for the abstract namespace.
  explicit fake_manager(const std::string& name) {
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    BOOST_REQUIRE(fd_ >= 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    BOOST_REQUIRE(name.size() < sizeof(address.sun_path));
    std::memcpy(address.sun_path, name.data(), name.size());
    std::size_t length = name.size() + 1;
    if (name.front() == '@') {
      address.sun_path[0] = '\0';
      length = name.size();
    }
    const auto size = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + length);
    BOOST_REQUIRE_MESSAGE(::bind(fd_, reinterpret_cast<const sockaddr*>(&address), size) == 0,
                          "bind " << name << ": " << std::strerror(errno));
  }
  ~fake_manager() { close(); }
  fake_manager(const fake_manager&) = delete;
  fake_manager& operator=(const fake_manager&) = delete;

  /// The next datagram, or empty if none is queued.
  std::optional<std::string> receive() {
    std::array<char, 4096> buffer{};
    const ssize_t n = ::recv(fd_, buffer.data(), buffer.size(), MSG_DONTWAIT);
    if (n < 0) return std::nullopt;
    return std::string(buffer.data(), static_cast<std::size_t>(n));
  }

  void close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
};

std::string unique_abstract_name() {
  static int counter = 0;
  return "@prefork-notify-test-" + std::to_string(::getpid()) + "-" + std::to_string(++counter);
}

void check_round_trip(systemd_notifier& notifier, fake_manager& manager) {
  const std::vector<std::string> messages{
      "READY=1",      "READY=1\nSTATUS=4 workers ready", reloading_message(123456789), "STOPPING=1", "WATCHDOG=1",
      "MAINPID=4242",
  };
  for (const std::string& message : messages) {
    const auto ec = notifier.notify(message);
    BOOST_TEST(!ec, "notify: " << ec.message());
    const auto received = manager.receive();
    BOOST_TEST_REQUIRE(received.has_value(), "nothing received for " << message);
    BOOST_TEST(*received == message);
  }
  BOOST_TEST(!manager.receive().has_value(), "one datagram per notify");
}

}  // namespace

BOOST_AUTO_TEST_SUITE(systemd_notify)

BOOST_AUTO_TEST_CASE(sends_to_a_path_socket) {
  environment_guard env;
  temp_dir dir;
  const std::string path = dir.path + "/notify";
  fake_manager manager(path);
  env.set("NOTIFY_SOCKET", path);
  systemd_notifier notifier = systemd_notifier::from_environment();
  BOOST_TEST(notifier.enabled());
  check_round_trip(notifier, manager);
  // The environment is left as it was: a USR2 successor needs NOTIFY_SOCKET.
  BOOST_TEST(std::getenv("NOTIFY_SOCKET") != nullptr);
}

BOOST_AUTO_TEST_CASE(sends_to_an_abstract_socket) {
  environment_guard env;
  const std::string name = unique_abstract_name();
  fake_manager manager(name);
  env.set("NOTIFY_SOCKET", name);
  systemd_notifier notifier = systemd_notifier::from_environment();
  BOOST_TEST(notifier.enabled());
  check_round_trip(notifier, manager);
}

BOOST_AUTO_TEST_CASE(without_notify_socket_it_is_disabled) {
  environment_guard env;
  env.set("WATCHDOG_USEC", "1000000");
  systemd_notifier notifier = systemd_notifier::from_environment();
  BOOST_TEST(!notifier.enabled());
  BOOST_TEST(!notifier.notify("READY=1"));
  BOOST_TEST(!notifier.watchdog_interval().has_value());

  env.set("NOTIFY_SOCKET", "");
  notifier = systemd_notifier::from_environment();
  BOOST_TEST(!notifier.enabled());
  BOOST_TEST(!notifier.notify("READY=1"));

  systemd_notifier default_constructed;
  BOOST_TEST(!default_constructed.enabled());
  BOOST_TEST(!default_constructed.notify("READY=1"));
}

BOOST_AUTO_TEST_CASE(disable_stops_notifications) {
  environment_guard env;
  const std::string name = unique_abstract_name();
  fake_manager manager(name);
  env.set("NOTIFY_SOCKET", name);
  env.set("WATCHDOG_USEC", "2000000");
  systemd_notifier notifier = systemd_notifier::from_environment();
  BOOST_TEST(notifier.watchdog_interval().has_value());
  notifier.disable();
  BOOST_TEST(!notifier.enabled());
  BOOST_TEST(!notifier.watchdog_interval().has_value());
  BOOST_TEST(!notifier.notify("STOPPING=1"));
  BOOST_TEST(!manager.receive().has_value());
}

BOOST_AUTO_TEST_CASE(unusable_addresses_are_reported_by_notify) {
  environment_guard env;
  env.set("NOTIFY_SOCKET", "relative/notify");
  systemd_notifier notifier = systemd_notifier::from_environment();
  BOOST_TEST(notifier.enabled());
  BOOST_TEST(notifier.notify("READY=1") == errc::invalid_argument);

  env.set("NOTIFY_SOCKET", "/" + std::string(sizeof(sockaddr_un::sun_path), 'x'));
  BOOST_TEST(systemd_notifier::from_environment().notify("READY=1") == errc::filename_too_long);
  env.set("NOTIFY_SOCKET", "@" + std::string(sizeof(sockaddr_un::sun_path), 'x'));
  BOOST_TEST(systemd_notifier::from_environment().notify("READY=1") == errc::filename_too_long);

  // The longest names that fit: a path with its NUL, an abstract name without one.
  env.set("NOTIFY_SOCKET", "/" + std::string(sizeof(sockaddr_un::sun_path) - 2, 'x'));
  BOOST_TEST(systemd_notifier::from_environment().notify("READY=1") == errc::no_such_file_or_directory);
  env.set("NOTIFY_SOCKET", "@" + std::string(sizeof(sockaddr_un::sun_path) - 1, 'y'));
  BOOST_TEST(systemd_notifier::from_environment().notify("READY=1") == errc::connection_refused);
}

BOOST_AUTO_TEST_CASE(send_failures_are_values) {
  environment_guard env;
  temp_dir dir;
  const std::string path = dir.path + "/notify";

  env.set("NOTIFY_SOCKET", path);  // nothing there yet
  BOOST_TEST(systemd_notifier::from_environment().notify("READY=1") == errc::no_such_file_or_directory);

  {
    fake_manager manager(path);
    systemd_notifier notifier = systemd_notifier::from_environment();
    BOOST_TEST(notifier.notify("") == errc::invalid_argument);
    BOOST_TEST(!manager.receive().has_value());

    // A manager that does not read: the queue fills and notify fails instead of blocking.
    boost::system::error_code ec;
    int sent = 0;
    while (!(ec = notifier.notify("WATCHDOG=1")) && sent < 100000) ++sent;
    BOOST_TEST(ec == errc::resource_unavailable_try_again, ec.message() << " after " << sent);
    BOOST_TEST((manager.receive() == std::optional<std::string>("WATCHDOG=1")));
    BOOST_TEST(!notifier.notify("WATCHDOG=1"), "the queue has room again");

    manager.close();  // the socket file stays, nobody is bound to it
    BOOST_TEST(notifier.notify("READY=1") == errc::connection_refused);
  }
}

BOOST_AUTO_TEST_CASE(watchdog_interval_is_half_of_watchdog_usec) {
  environment_guard env;
  env.set("NOTIFY_SOCKET", unique_abstract_name());

  env.set("WATCHDOG_USEC", "20000000");
  BOOST_TEST((systemd_notifier::from_environment().watchdog_interval() == std::optional(10'000'000us)));
  env.set("WATCHDOG_USEC", "3");
  BOOST_TEST((systemd_notifier::from_environment().watchdog_interval() == std::optional(1us)));
  env.set("WATCHDOG_USEC", "1");
  BOOST_TEST((systemd_notifier::from_environment().watchdog_interval() == std::optional(1us)));

  env.set("WATCHDOG_PID", std::to_string(::getpid()));
  env.set("WATCHDOG_USEC", "5000000");
  BOOST_TEST((systemd_notifier::from_environment().watchdog_interval() == std::optional(2'500'000us)));

  ::unsetenv("WATCHDOG_USEC");
  BOOST_TEST(!systemd_notifier::from_environment().watchdog_interval().has_value());
}

BOOST_AUTO_TEST_CASE(invalid_watchdog_usec_disables_the_watchdog) {
  environment_guard env;
  env.set("NOTIFY_SOCKET", unique_abstract_name());
  for (const char* value : {"", "0", "-5", "+5", " 5", "5 ", "12x", "abc", "1.5", "0x10", "99999999999999999999999",
                            "9223372036854775808"}) {
    env.set("WATCHDOG_USEC", value);
    const systemd_notifier notifier = systemd_notifier::from_environment();
    BOOST_TEST(notifier.enabled());
    BOOST_TEST(!notifier.watchdog_interval().has_value(), "WATCHDOG_USEC=\"" << value << '"');
  }
}

BOOST_AUTO_TEST_CASE(watchdog_pid_of_another_process_disables_the_watchdog) {
  environment_guard env;
  env.set("NOTIFY_SOCKET", unique_abstract_name());
  env.set("WATCHDOG_USEC", "1000000");
  const std::string other_pid = std::to_string(::getpid() == 1 ? 2 : 1);
  for (const std::string& value : {other_pid, std::to_string(::getpid()) + "x", std::string(), std::string("0"),
                                   std::string("-") + std::to_string(::getpid()), std::string("abc")}) {
    env.set("WATCHDOG_PID", value);
    BOOST_TEST(!systemd_notifier::from_environment().watchdog_interval().has_value(),
               "WATCHDOG_PID=\"" << value << '"');
  }
}

BOOST_AUTO_TEST_CASE(reloading_message_format) {
  BOOST_TEST(reloading_message(0) == "RELOADING=1\nMONOTONIC_USEC=0");
  BOOST_TEST(reloading_message(18446744073709551615u) == "RELOADING=1\nMONOTONIC_USEC=18446744073709551615");
}

BOOST_AUTO_TEST_CASE(monotonic_usec_now_uses_clock_monotonic) {
  timespec before_spec{};
  ::clock_gettime(CLOCK_MONOTONIC, &before_spec);
  const std::uint64_t now = monotonic_usec_now();
  timespec after_spec{};
  ::clock_gettime(CLOCK_MONOTONIC, &after_spec);
  const auto to_usec = [](const timespec& t) {
    return static_cast<std::uint64_t>(t.tv_sec) * 1'000'000u + static_cast<std::uint64_t>(t.tv_nsec) / 1000u;
  };
  BOOST_TEST(to_usec(before_spec) <= now);
  BOOST_TEST(now <= to_usec(after_spec));
}

BOOST_AUTO_TEST_SUITE_END()
