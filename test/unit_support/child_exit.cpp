#include "unit_support/child_exit.hpp"

#include <signal.h>
#include <sys/wait.h>

#include <chrono>
#include <thread>

namespace prefork::unit_support {

int wait_bounded(pid_t child) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  int status = 0;
  while (::waitpid(child, &status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() > deadline) {
      ::kill(child, SIGKILL);
      ::waitpid(child, &status, 0);
      return -1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

}  // namespace prefork::unit_support
