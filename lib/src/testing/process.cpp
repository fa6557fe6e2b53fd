// prefork::testing::process: a program started in its own process group, reaped through
// one Boost.Process v2 handle (a pidfd), stopped with its whole group; and run(), which
// runs a command to its end. The child's set-up is child_setup.hpp.
#include "prefork/testing/process.hpp"

#include "testing/child_setup.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/process/v2/process.hpp>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <system_error>
#include <utility>

namespace prefork::testing {

namespace asio = boost::asio;
namespace fs = std::filesystem;
namespace bp = boost::process::v2;
using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;
using detail::child_environment;
using detail::child_setup;
using detail::listen_pid_prefix;

namespace {

[[noreturn]] void throw_errno(const std::string& what) {
  throw std::system_error(errno, std::generic_category(), what);
}

class unique_fd {
 public:
  explicit unique_fd(int fd = -1) noexcept : fd_(fd) {}
  ~unique_fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  unique_fd(unique_fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  unique_fd& operator=(unique_fd&& other) noexcept {
    std::swap(fd_, other.fd_);
    return *this;
  }
  int get() const noexcept { return fd_; }

 private:
  int fd_;
};

unique_fd open_or_throw(const fs::path& file, int flags) {
  unique_fd fd(::open(file.c_str(), flags | O_CLOEXEC, 0644));
  if (fd.get() < 0) throw_errno("open " + file.string());
  return fd;
}

}  // namespace

// --- exit status ----------------------------------------------------------------------------

exit_status exit_status::from_wait_status(int status) noexcept {
  exit_status result;
  if (WIFEXITED(status)) result.code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) result.signal = WTERMSIG(status);
  return result;
}

std::string exit_status::to_string() const {
  if (signal == 0) return "exit " + std::to_string(code);
  const char* name = ::sigabbrev_np(signal);
  return "signal " + std::to_string(signal) + " (" + (name ? name : "?") + ")";
}

// --- process ------------------------------------------------------------------------------------

struct process::impl {
  using process_handle = bp::basic_process_handle<asio::io_context::executor_type>;

  asio::io_context io;                   // owns the handle's pidfd; never run
  std::optional<process_handle> leader;  // the one reaper of the leader
  unique_fd leader_fd;                   // a pidfd of our own, to poll and to signal
  pid_t pid = -1;
  std::optional<exit_status> exit;
  bool finished = false;  // stop() or kill() ran

  void launch(const fs::path& program, const process_options& options) {
    if (::access(program.c_str(), X_OK) != 0)
      throw std::runtime_error("cannot start " + program.string() + ": " + program.string() +
                               " is not executable: " + std::strerror(errno));
    std::vector<std::string> environment = child_environment(options);
    std::vector<const char*> envp;
    for (const auto& entry : environment) envp.push_back(entry.c_str());
    envp.push_back(nullptr);
    char* listen_pid_digits = options.activation ? environment.back().data() + listen_pid_prefix.size() : nullptr;

    unique_fd null_fd = open_or_throw("/dev/null", O_RDONLY);
    auto output = [&](const fs::path& file) {
      return file.empty() ? open_or_throw("/dev/null", O_WRONLY) : open_or_throw(file, O_WRONLY | O_CREAT | O_APPEND);
    };
    unique_fd out_fd = output(options.stdout_file);
    unique_fd err_fd = output(options.stderr_file);
    const std::string directory = options.directory.string();
    const std::vector<int> no_sockets;
    const std::vector<int>& activated = options.activation ? options.activation->fds : no_sockets;
    std::vector<int> staged(activated.size(), -1);
    child_setup setup{directory.empty() ? nullptr : directory.c_str(),
                      null_fd.get(),
                      out_fd.get(),
                      err_fd.get(),
                      ::getpid(),
                      &activated,
                      staged.data(),
                      listen_pid_digits};

    bp::posix::default_launcher launcher;
    launcher.env = envp.data();
    boost::system::error_code ec;
    auto started = launcher(io.get_executor(), ec, bp::filesystem::path(program.string()), options.arguments, setup);
    if (ec) {
      // 1.81 returns an empty handle after a failed exec: reap the child that tried it.
      if (launcher.pid > 0) ::waitpid(launcher.pid, nullptr, 0);
      throw std::runtime_error("cannot start " + program.string() + ": " + ec.message());
    }
    pid = started.id();
    // Not reaped yet, so the pid cannot have been reused.
    leader_fd = unique_fd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
    if (leader_fd.get() < 0) {
      auto error = errno;
      started.terminate(ec);
      started.wait(ec);
      throw std::system_error(error, std::generic_category(), "pidfd_open");
    }
    // The handle (a pidfd) is the one reaper; detached from basic_process, whose
    // destructor would SIGKILL and waitpid the pid even after we reaped it.
    leader.emplace(started.detach());
  }

  bool running() {
    if (exit || !leader) return false;
    int status = 0;
    boost::system::error_code ec;
    if (leader->running(status, ec)) return true;
    // An error means it is not our child any more (reaped elsewhere): nothing to learn.
    exit = ec ? exit_status{} : exit_status::from_wait_status(status);
    leader.reset();
    return false;
  }

  void sleep(std::chrono::microseconds duration) {
    const timespec timeout{static_cast<time_t>(duration.count() / 1000000),
                           static_cast<long>(duration.count() % 1000000) * 1000};
    pollfd descriptor{leader ? leader_fd.get() : -1, POLLIN, 0};  // a negative fd is ignored
    ::ppoll(&descriptor, 1, &timeout, nullptr);
  }

  bool wait_for_exit(std::chrono::milliseconds timeout) {
    const auto deadline = steady::now() + timeout;
    for (;;) {
      if (!running()) return true;
      auto left = std::chrono::duration_cast<std::chrono::microseconds>(deadline - steady::now());
      if (left.count() <= 0) return false;
      sleep(std::min<std::chrono::microseconds>(left, 1s));
    }
  }

  // SIGKILL to the group. Safe while the leader is unreaped (a zombie still holds the
  // group id) or while members are seen (the id is in use, so it was not reused).
  void kill_group() {
    if (pid > 0 && (leader || !group_members(pid).empty())) ::kill(-pid, SIGKILL);
  }

  bool wait_group_gone(std::chrono::milliseconds timeout) {
    const auto deadline = steady::now() + timeout;
    for (;;) {
      if (group_members(pid).empty()) return true;
      if (steady::now() >= deadline) return false;
      ::poll(nullptr, 0, 10);
    }
  }

  std::string describe_members() const {
    std::string text;
    for (pid_t member : group_members(pid)) {
      if (!text.empty()) text += "; ";
      text += describe_process(member);
    }
    return text;
  }

  void kill(std::chrono::milliseconds timeout) noexcept {
    finished = true;
    if (pid <= 0) return;
    kill_group();
    wait_for_exit(timeout);
    if (!wait_group_gone(timeout)) kill_group();
  }

  exit_status stop(int signal_number, std::chrono::milliseconds timeout) {
    if (finished) return exit.value_or(exit_status{});
    finished = true;
    if (running()) {
      ::syscall(SYS_pidfd_send_signal, leader_fd.get(), signal_number, nullptr, 0);
      if (!wait_for_exit(timeout)) {
        kill_group();
        wait_for_exit(timeout);
      }
    }
    if (!wait_group_gone(timeout)) {
      std::string survivors = describe_members();
      kill_group();
      wait_group_gone(timeout);
      throw std::runtime_error("processes of group " + std::to_string(pid) + " outlived its leader (" +
                               exit.value_or(exit_status{}).to_string() + ") by " + std::to_string(timeout.count()) +
                               " ms and were killed: " + survivors);
    }
    return exit.value_or(exit_status{});
  }
};

process::process(const fs::path& program, const process_options& options) : impl_(std::make_unique<impl>()) {
  impl_->launch(program, options);
}

process::~process() {
  if (!impl_->finished) impl_->kill(2s);
}

pid_t process::pid() const noexcept { return impl_->pid; }
bool process::running() { return impl_->running(); }

std::optional<exit_status> process::wait_exit(std::chrono::milliseconds timeout) {
  if (impl_->wait_for_exit(timeout)) return impl_->exit;
  return std::nullopt;
}

const std::optional<exit_status>& process::exit() const noexcept { return impl_->exit; }
void process::sleep(std::chrono::microseconds duration) { impl_->sleep(duration); }

bool process::signal(int signal_number) {
  if (!impl_->running()) return false;
  // Through the pidfd: never a recycled pid. (Debian 12's <sys/pidfd.h> lacks extern "C".)
  return ::syscall(SYS_pidfd_send_signal, impl_->leader_fd.get(), signal_number, nullptr, 0) == 0;
}

bool process::signal_group(int signal_number) {
  if (!impl_->leader && group_members(impl_->pid).empty()) return false;
  return ::kill(-impl_->pid, signal_number) == 0;
}

std::vector<pid_t> process::members() const { return group_members(impl_->pid); }
std::string process::describe_members() const { return impl_->describe_members(); }
bool process::wait_group_gone(std::chrono::milliseconds timeout) { return impl_->wait_group_gone(timeout); }

exit_status process::stop(int signal_number, std::chrono::milliseconds timeout) {
  return impl_->stop(signal_number, timeout);
}

void process::kill(std::chrono::milliseconds timeout) noexcept { impl_->kill(timeout); }

// --- run ----------------------------------------------------------------------------------------

std::string run_result::describe() const {
  std::string text = status ? status->to_string() : std::string("timed out (killed)");
  text += "; stdout: " + (out.empty() ? std::string("(empty)") : out);
  text += "; stderr: " + (err.empty() ? std::string("(empty)") : err);
  if (!left_behind.empty()) text += "; left behind: " + left_behind;
  return text;
}

run_result run(const fs::path& program, process_options options, std::chrono::milliseconds timeout) {
  temp_directory output("prefork-run");
  options.stdout_file = output / "stdout";
  options.stderr_file = output / "stderr";
  process child(program, options);
  run_result result;
  result.status = child.wait_exit(timeout);
  // A leftover of a one-shot command is a bug to report, but it must not outlive the test.
  if (result.status && !child.wait_group_gone(2s)) result.left_behind = child.describe_members();
  child.kill();
  result.out = read_file(output / "stdout");
  result.err = read_file(output / "stderr");
  return result;
}

}  // namespace prefork::testing
