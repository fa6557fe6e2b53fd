// How prefork::testing::process starts its child: the environment built before the fork
// (supervisor variables dropped, socket activation's added) and child_setup, the Boost.Process
// v2 initializer whose hooks run in the child before execve.
#pragma once

#include "prefork/testing/process.hpp"

// Before Boost.Process: 1.81's default_launcher.hpp uses asio::detail::throw_error
// without including it.
#include <boost/asio/io_context.hpp>
#include <boost/process/v2/process.hpp>

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace prefork::testing::detail {

inline constexpr std::string_view listen_pid_prefix = "LISTEN_PID=";

// The child's environment, built before the fork. With socket activation the last entry
// is LISTEN_PID with room for the digits of a pid, which the child writes in place.
std::vector<std::string> child_environment(const process_options& options);

// The child's set-up, a Boost.Process v2 initializer. on_exec_setup runs in the forked
// child before execve; the test may have other threads, so only async-signal-safe calls:
// everything it needs was prepared before the fork.
struct child_setup {
  const char* directory;  // nullptr: stay where the test is
  int stdin_fd;
  int stdout_fd;
  int stderr_fd;
  pid_t parent;
  const std::vector<int>* activated;  // sockets to place at 3, 4, ...; may be empty
  int* staged;                        // room for activated->size() descriptors
  char* listen_pid_digits;            // where LISTEN_PID's value goes, or nullptr

  // In the parent, before the fork: the descriptors the launcher's clean-up must keep.
  template <class Launcher>
  boost::system::error_code on_setup(Launcher& launcher, const boost::process::v2::filesystem::path&,
                                     const char* const*) {
    for (std::size_t i = 0; i < activated->size(); ++i) launcher.fd_whitelist.push_back(3 + static_cast<int>(i));
    return {};
  }

  template <class Launcher>
  boost::system::error_code on_exec_setup(Launcher&, const boost::process::v2::filesystem::path&, const char* const*) {
    auto failed = [] { return boost::system::error_code(errno, boost::system::system_category()); };
    // Own process group: the test signals and inspects the program as one group.
    if (::setpgid(0, 0) != 0) return failed();
    // Default signal state: the test framework's handlers and mask are not the program's.
    sigset_t none;
    ::sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    struct sigaction default_action {};
    default_action.sa_handler = SIG_DFL;
    for (int sig = 1; sig < NSIG; ++sig) ::sigaction(sig, &default_action, nullptr);
    // Die with the test: a test killed by its timeout leaves nothing behind.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(126);  // the test died before prctl took effect
    if (directory != nullptr && ::chdir(directory) != 0) return failed();
    // Activated sockets go to 3, 4, ...: first copy them above that range, so that no
    // placement overwrites a source that is still to be placed.
    const int floor = 3 + static_cast<int>(activated->size());
    for (std::size_t i = 0; i < activated->size(); ++i) {
      staged[i] = ::fcntl((*activated)[i], F_DUPFD_CLOEXEC, floor);
      if (staged[i] < 0) return failed();
    }
    if (listen_pid_digits != nullptr) {
      char digits[24];
      std::size_t length = 0;
      for (unsigned long value = static_cast<unsigned long>(::getpid()); value != 0; value /= 10)
        digits[length++] = static_cast<char>('0' + value % 10);
      for (std::size_t i = 0; i < length; ++i) listen_pid_digits[i] = digits[length - 1 - i];
      listen_pid_digits[length] = '\0';
    }
    if (::dup2(stdin_fd, 0) < 0 || ::dup2(stdout_fd, 1) < 0 || ::dup2(stderr_fd, 2) < 0) return failed();
    // 1.81's close_all leaves gaps in its whitelist open: make everything above 2
    // close-on-exec (the launcher's error pipe included, which is what it expects).
    if (::close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) != 0) return failed();
    // dup2 clears close-on-exec on the copy only. (Should the launcher's error pipe sit in
    // this range it is replaced: a failed exec then shows as exit 127, not as an error.)
    for (std::size_t i = 0; i < activated->size(); ++i)
      if (::dup2(staged[i], 3 + static_cast<int>(i)) < 0) return failed();
    return {};
  }

  // 1.81 calls exit() after a failed exec, which would run the test's atexit handlers and
  // flush its stdio buffers in the child. The launcher already sent errno to the parent.
  // (Variadic: 1.81 detects this hook with a different argument list than it calls it with.)
  template <class... Arguments>
  void on_exec_error(Arguments&&...) {
    ::_exit(127);
  }
};

}  // namespace prefork::testing::detail
