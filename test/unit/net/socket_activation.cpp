// inherited_sockets() with real listening sockets placed at descriptors 3, 4, ... in a forked
// child (as a service manager would pass them), and its answers to malformed environments.
#include "net/socket_activation.hpp"

#include <boost/system/errc.hpp>
#include <boost/test/unit_test.hpp>

#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace {

using prefork::detail::inherited_socket;
using prefork::detail::inherited_sockets;
namespace errc = boost::system::errc;

constexpr std::array<const char*, 3> listen_variables{"LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"};

// Restores the three variables as they were before the test.
class environment_guard {
 public:
  environment_guard() {
    for (const char* name : listen_variables) {
      const char* value = std::getenv(name);
      saved_.push_back(value ? std::optional<std::string>(value) : std::nullopt);
      ::unsetenv(name);
    }
  }
  ~environment_guard() {
    for (std::size_t i = 0; i < listen_variables.size(); ++i) {
      if (saved_[i]) {
        ::setenv(listen_variables[i], saved_[i]->c_str(), 1);
      } else {
        ::unsetenv(listen_variables[i]);
      }
    }
  }
  environment_guard(const environment_guard&) = delete;
  environment_guard& operator=(const environment_guard&) = delete;

 private:
  std::vector<std::optional<std::string>> saved_;
};

bool environment_cleared() {
  for (const char* name : listen_variables) {
    if (std::getenv(name) != nullptr) return false;
  }
  return true;
}

void set_environment(const std::optional<std::string>& pid, const std::optional<std::string>& count,
                     const std::optional<std::string>& names = std::nullopt) {
  const std::array<const std::optional<std::string>*, 3> values{&pid, &count, &names};
  for (std::size_t i = 0; i < listen_variables.size(); ++i) {
    if (*values[i]) {
      ::setenv(listen_variables[i], (*values[i])->c_str(), 1);
    } else {
      ::unsetenv(listen_variables[i]);
    }
  }
}

std::string own_pid() { return std::to_string(::getpid()); }

// ---------------------------------------------------------------------------------------
// Forked children: descriptors 3, 4, ... are the child's to rearrange. A child records
// failed expectations as text and sends them to the parent through a pipe kept at a high
// descriptor; an alarm bounds it.

class child_checks {
 public:
  void expect(bool condition, const std::string& what) {
    if (!condition) failures_ += what + "\n";
  }
  const std::string& failures() const { return failures_; }

 private:
  std::string failures_;
};

/// Moves `fd` to a descriptor >= `at_least` (close-on-exec cleared) and closes the original.
int move_high(int fd, int at_least) {
  const int high = ::fcntl(fd, F_DUPFD, at_least);
  ::close(fd);
  return high;
}

int unix_listener() {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;  // autobind: an abstract address picked by the kernel
  if (fd < 0 || ::bind(fd, reinterpret_cast<const sockaddr*>(&address), sizeof(sa_family_t)) != 0 ||
      ::listen(fd, 4) != 0) {
    return -1;
  }
  return fd;
}

int tcp_listener() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd < 0 || ::bind(fd, reinterpret_cast<const sockaddr*>(&address), sizeof(address)) != 0 || ::listen(fd, 4) != 0) {
    return -1;
  }
  return fd;
}

/// Places listening sockets (Unix, TCP, Unix, ...) at 3 .. 3+count-1, closes the next
/// few descriptors, and returns false if that failed.
bool place_listeners(int count) {
  std::vector<int> high;
  for (int i = 0; i < count; ++i) {
    const int fd = i % 2 == 0 ? unix_listener() : tcp_listener();
    if (fd < 0) return false;
    high.push_back(move_high(fd, 300 + i));
  }
  for (int i = 0; i < count; ++i) {
    if (::dup2(high[static_cast<std::size_t>(i)], 3 + i) != 3 + i) return false;  // dup2 clears FD_CLOEXEC
    ::close(high[static_cast<std::size_t>(i)]);
  }
  for (int fd = 3 + count; fd < 3 + count + 4; ++fd) ::close(fd);
  return true;
}

bool close_on_exec(int fd) { return (::fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0; }

bool is_listening(int fd) {
  int accepting = 0;
  socklen_t size = sizeof(accepting);
  return ::getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &accepting, &size) == 0 && accepting != 0;
}

/// Runs `body` in a forked child and returns what it reported (empty: all expectations held).
std::string run_in_child(const std::function<void(child_checks&)>& body) {
  int pipe_fds[2];
  BOOST_REQUIRE(::pipe(pipe_fds) == 0);
  // Out of the way of descriptors 3, 4, ... which the child rearranges.
  const int read_end = move_high(pipe_fds[0], 200);
  const int write_end = move_high(pipe_fds[1], 201);
  BOOST_REQUIRE(read_end >= 0 && write_end >= 0);

  const pid_t pid = ::fork();
  BOOST_REQUIRE(pid >= 0);
  if (pid == 0) {
    ::close(read_end);
    ::alarm(10);
    child_checks checks;
    try {
      body(checks);
    } catch (const std::exception& e) {
      checks.expect(false, std::string("exception: ") + e.what());
    }
    std::string report = checks.failures();
    if (report.empty()) report = "ok";
    [[maybe_unused]] const ssize_t written = ::write(write_end, report.data(), report.size());
    ::_exit(0);  // not exit(): the parent's Boost.Test state must not be flushed twice
  }
  ::close(write_end);
  std::string report;
  std::array<char, 4096> buffer{};
  while (true) {
    const ssize_t n = ::read(read_end, buffer.data(), buffer.size());
    if (n > 0) {
      report.append(buffer.data(), static_cast<std::size_t>(n));
    } else if (n == 0 || errno != EINTR) {
      break;
    }
  }
  ::close(read_end);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  BOOST_TEST((WIFEXITED(status) && WEXITSTATUS(status) == 0), "child status " << status);
  return report == "ok" ? std::string() : (report.empty() ? std::string("child reported nothing") : report);
}

}  // namespace

BOOST_AUTO_TEST_SUITE(socket_activation)

BOOST_AUTO_TEST_CASE(adopts_named_sockets_from_fd_3) {
  environment_guard guard;
  const std::string failures = run_in_child([](child_checks& check) {
    check.expect(place_listeners(2), "placing listeners");
    check.expect(!close_on_exec(3) && !close_on_exec(4), "test setup: close-on-exec clear");
    set_environment(own_pid(), "2", "web:metrics");
    const auto sockets = inherited_sockets();
    check.expect(sockets.has_value(), "inherited_sockets failed");
    if (!sockets) return;
    check.expect(sockets->size() == 2, "two sockets, got " + std::to_string(sockets->size()));
    if (sockets->size() != 2) return;
    check.expect((*sockets)[0].fd == 3 && (*sockets)[0].name == "web", "first is 3 \"web\"");
    check.expect((*sockets)[1].fd == 4 && (*sockets)[1].name == "metrics", "second is 4 \"metrics\"");
    check.expect(close_on_exec(3) && close_on_exec(4), "FD_CLOEXEC set on both");
    check.expect(is_listening(3) && is_listening(4), "still listening");
    check.expect(environment_cleared(), "LISTEN_* unset");
  });
  BOOST_TEST(failures.empty(), failures);
}

BOOST_AUTO_TEST_CASE(names_default_to_unknown_and_may_be_empty) {
  environment_guard guard;
  std::string failures = run_in_child([](child_checks& check) {
    check.expect(place_listeners(1), "placing listeners");
    set_environment(own_pid(), "1");
    const auto sockets = inherited_sockets();
    check.expect(sockets.has_value() && sockets->size() == 1, "one socket");
    if (!sockets || sockets->size() != 1) return;
    check.expect((*sockets)[0].fd == 3 && (*sockets)[0].name == "unknown", "3 \"unknown\"");
    check.expect(environment_cleared(), "LISTEN_* unset");
  });
  BOOST_TEST(failures.empty(), failures);

  failures = run_in_child([](child_checks& check) {
    check.expect(place_listeners(3), "placing listeners");
    set_environment(own_pid(), "3", "a::c");
    const auto sockets = inherited_sockets();
    check.expect(sockets.has_value() && sockets->size() == 3, "three sockets");
    if (!sockets || sockets->size() != 3) return;
    check.expect((*sockets)[0].name == "a" && (*sockets)[1].name.empty() && (*sockets)[2].name == "c",
                 "names a, \"\", c");
    check.expect((*sockets)[2].fd == 5 && close_on_exec(5), "third is 5, close-on-exec");
  });
  BOOST_TEST(failures.empty(), failures);
}

BOOST_AUTO_TEST_CASE(another_process_pid_gives_nothing) {
  environment_guard guard;
  const std::string failures = run_in_child([](child_checks& check) {
    check.expect(place_listeners(1), "placing listeners");
    set_environment(std::to_string(::getppid()), "1", "web");
    const auto sockets = inherited_sockets();
    check.expect(sockets.has_value() && sockets->empty(), "empty for another pid");
    check.expect(!close_on_exec(3), "fd 3 untouched");
    check.expect(environment_cleared(), "LISTEN_* unset");
  });
  BOOST_TEST(failures.empty(), failures);
}

BOOST_AUTO_TEST_CASE(missing_variables_give_nothing) {
  environment_guard guard;
  const std::vector<std::pair<std::optional<std::string>, std::optional<std::string>>> cases{
      {std::nullopt, std::nullopt},
      {own_pid(), std::nullopt},
      {std::nullopt, "1"},
      {own_pid(), "0"},
  };
  for (const auto& [pid, count] : cases) {
    set_environment(pid, count, "web");
    const auto sockets = inherited_sockets();
    BOOST_TEST_REQUIRE(sockets.has_value());
    BOOST_TEST(sockets->empty());
    BOOST_TEST(environment_cleared());
  }
}

BOOST_AUTO_TEST_CASE(malformed_variables_are_errors) {
  environment_guard guard;
  // None of these reaches a descriptor, so they run in this process.
  for (const char* count : {"", "abc", "-1", "+1", "1x", " 1", "0x1", "2147483645", "99999999999999999999"}) {
    set_environment(own_pid(), count);
    const auto sockets = inherited_sockets();
    BOOST_TEST_REQUIRE(sockets.has_error(), "LISTEN_FDS=\"" << count << '"');
    BOOST_TEST(sockets.error() == errc::invalid_argument);
    BOOST_TEST(environment_cleared());
  }
  for (const char* pid : {"", "abc", "0", "-1", "12x"}) {
    set_environment(std::string(pid), "1");
    const auto sockets = inherited_sockets();
    BOOST_TEST_REQUIRE(sockets.has_error(), "LISTEN_PID=\"" << pid << '"');
    BOOST_TEST(sockets.error() == errc::invalid_argument);
    BOOST_TEST(environment_cleared());
  }
}

BOOST_AUTO_TEST_CASE(name_count_mismatch_is_an_error) {
  environment_guard guard;
  const std::string failures = run_in_child([](child_checks& check) {
    check.expect(place_listeners(2), "placing listeners");
    for (const char* names : {"web", "a:b:c", ""}) {
      set_environment(own_pid(), "2", std::string(names));
      const auto sockets = inherited_sockets();
      check.expect(sockets.has_error() && sockets.error() == errc::invalid_argument,
                   std::string("invalid_argument for LISTEN_FDNAMES=") + names);
      check.expect(!close_on_exec(3) && !close_on_exec(4), "descriptors untouched");
      check.expect(environment_cleared(), "LISTEN_* unset");
    }
  });
  BOOST_TEST(failures.empty(), failures);
}

BOOST_AUTO_TEST_CASE(a_descriptor_that_is_not_open_is_an_error) {
  environment_guard guard;
  const std::string failures = run_in_child([](child_checks& check) {
    check.expect(place_listeners(2), "placing listeners");  // 3, 4 open; 5.. closed
    set_environment(own_pid(), "3");
    const auto sockets = inherited_sockets();
    check.expect(sockets.has_error() && sockets.error() == errc::bad_file_descriptor, "bad_file_descriptor");
    check.expect(!close_on_exec(3) && !close_on_exec(4), "open descriptors untouched");
    check.expect(environment_cleared(), "LISTEN_* unset");
  });
  BOOST_TEST(failures.empty(), failures);
}

BOOST_AUTO_TEST_SUITE_END()
