#include "prefork/testing/process.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/process/v2/process.hpp>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <system_error>
#include <utility>

extern char** environ;

namespace prefork::testing {

namespace asio = boost::asio;
namespace fs = std::filesystem;
namespace bp = boost::process::v2;
using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

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

struct proc_stat {
  std::string command;
  char state = '?';
  pid_t parent = 0;
  pid_t group = 0;
};

std::optional<proc_stat> read_stat(pid_t pid) {
  std::string text = read_file("/proc/" + std::to_string(pid) + "/stat");
  // "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses.
  auto open = text.find('(');
  auto close = text.rfind(')');
  if (open == std::string::npos || close == std::string::npos || close < open) return std::nullopt;
  proc_stat stat;
  stat.command = text.substr(open + 1, close - open - 1);
  std::istringstream rest(text.substr(close + 1));
  if (!(rest >> stat.state >> stat.parent >> stat.group)) return std::nullopt;
  return stat;
}

bool is_supervisor_variable(std::string_view entry) {
  for (std::string_view name :
       {"NOTIFY_SOCKET=", "LISTEN_FDS=", "LISTEN_PID=", "LISTEN_FDNAMES=", "WATCHDOG_USEC=", "WATCHDOG_PID="}) {
    if (entry.starts_with(name)) return true;
  }
  return false;
}

constexpr std::string_view listen_pid_prefix = "LISTEN_PID=";

// The child's environment, built before the fork. With socket activation the last entry
// is LISTEN_PID with room for the digits of a pid, which the child writes in place.
std::vector<std::string> child_environment(const process_options& options) {
  std::vector<std::string> environment;
  for (char** entry = environ; *entry != nullptr; ++entry) {
    std::string_view text(*entry);
    if (is_supervisor_variable(text)) continue;
    bool replaced = std::any_of(options.environment.begin(), options.environment.end(),
                                [&](const auto& kv) { return text.starts_with(kv.first + "="); });
    if (!replaced) environment.emplace_back(text);
  }
  for (const auto& [name, value] : options.environment) environment.push_back(name + "=" + value);
  if (options.activation) {
    environment.push_back("LISTEN_FDS=" + std::to_string(options.activation->fds.size()));
    if (!options.activation->names.empty()) {
      std::string names;
      for (const auto& name : options.activation->names) names += (names.empty() ? "" : ":") + name;
      environment.push_back("LISTEN_FDNAMES=" + names);
    }
    environment.push_back(std::string(listen_pid_prefix) + std::string(24, '\0'));
  }
  return environment;
}

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
  boost::system::error_code on_setup(Launcher& launcher, const bp::filesystem::path&, const char* const*) {
    for (std::size_t i = 0; i < activated->size(); ++i) launcher.fd_whitelist.push_back(3 + static_cast<int>(i));
    return {};
  }

  template <class Launcher>
  boost::system::error_code on_exec_setup(Launcher&, const bp::filesystem::path&, const char* const*) {
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

}  // namespace

// --- small helpers ----------------------------------------------------------------------------

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

std::vector<pid_t> group_members(pid_t pgid) {
  std::vector<pid_t> members;
  std::error_code ec;
  fs::directory_iterator processes("/proc", ec);
  if (ec) return members;
  for (const auto& entry : processes) {
    const std::string name = entry.path().filename().string();
    pid_t pid = 0;
    auto [end, error] = std::from_chars(name.data(), name.data() + name.size(), pid);
    if (error != std::errc{} || end != name.data() + name.size()) continue;
    auto stat = read_stat(pid);
    if (stat && stat->group == pgid && stat->state != 'Z' && stat->state != 'X') members.push_back(pid);
  }
  std::sort(members.begin(), members.end());
  return members;
}

std::string describe_process(pid_t pid) {
  auto stat = read_stat(pid);
  if (!stat) return std::to_string(pid) + " (gone)";
  std::ostringstream text;
  text << pid << " (" << stat->command << ") state " << stat->state << " ppid " << stat->parent << " pgrp "
       << stat->group;
  return text.str();
}

temp_directory::temp_directory(std::string_view prefix) {
  std::string base = "/tmp";
  if (const char* tmp = std::getenv("TMPDIR"); tmp != nullptr && *tmp != '\0' && std::string_view(tmp).size() < 48)
    base = tmp;
  std::string pattern = base + "/" + std::string(prefix) + ".XXXXXX";
  if (::mkdtemp(pattern.data()) == nullptr) throw_errno("mkdtemp " + pattern);
  path_ = pattern;
}

temp_directory::~temp_directory() {
  if (std::getenv("PREFORK_KEEP_TMP") != nullptr) return;
  std::error_code ignored;
  fs::remove_all(path_, ignored);
}

void write_file(const fs::path& file, std::string_view text) {
  std::ofstream out(file, std::ios::binary | std::ios::trunc);
  out.write(text.data(), static_cast<std::streamsize>(text.size()));
  out.close();
  if (!out) throw std::runtime_error("cannot write " + file.string());
}

std::string read_file(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
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
