#include "support/server_process.hpp"

#include "prefork/testing.hpp"
#include "support/procfs.hpp"
#include "support/server_helpers.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/test/framework.hpp>
#include <boost/test/results_collector.hpp>
#include <boost/test/unit_test.hpp>

#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <deque>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <system_error>
#include <thread>

extern char** environ;

namespace prefork::test_support {

namespace fs = std::filesystem;
namespace json = boost::json;
using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;

namespace {

[[noreturn]] void throw_errno(const std::string& what) {
  throw std::system_error(errno, std::generic_category(), what);
}

// A descriptor closed on scope exit.
class unique_fd {
 public:
  explicit unique_fd(int fd = -1) noexcept : fd_(fd) {}
  ~unique_fd() { reset(); }
  unique_fd(const unique_fd&) = delete;
  unique_fd& operator=(const unique_fd&) = delete;
  int get() const noexcept { return fd_; }
  void reset() noexcept {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_;
};

bool is_supervisor_variable(std::string_view entry) {
  // A test run under systemd must not make preforkd talk to systemd or adopt sockets.
  for (std::string_view name :
       {"NOTIFY_SOCKET=", "LISTEN_FDS=", "LISTEN_PID=", "LISTEN_FDNAMES=", "WATCHDOG_USEC=", "WATCHDOG_PID="}) {
    if (entry.starts_with(name)) return true;
  }
  return false;
}

// Everything the child needs is built before fork(): after it, a multi-threaded parent's
// child may only make async-signal-safe calls.
pid_t spawn_in_group(const std::vector<std::string>& args, const fs::path& cwd, const fs::path& out,
                     const fs::path& err, const std::vector<std::pair<std::string, std::string>>& extra_env,
                     const socket_activation* activation = nullptr) {
  std::vector<std::string> environment;
  for (char** entry = environ; *entry != nullptr; ++entry) {
    std::string_view text(*entry);
    if (is_supervisor_variable(text)) continue;
    bool replaced = std::any_of(extra_env.begin(), extra_env.end(),
                                [&](const auto& kv) { return text.starts_with(kv.first + "="); });
    if (!replaced) environment.emplace_back(text);
  }
  for (const auto& [name, value] : extra_env) environment.push_back(name + "=" + value);
  // Socket activation: LISTEN_PID must be the child's pid, known only after fork(); its
  // entry is made here with room for the digits, which the child writes in place.
  const std::size_t activated_count = activation ? activation->fds.size() : 0;
  std::vector<int> staged_fds(activated_count, -1);
  constexpr std::size_t listen_pid_prefix = sizeof "LISTEN_PID=" - 1;
  if (activation) {
    std::erase_if(environment, [](const std::string& entry) {
      return entry.starts_with("LISTEN_FDS=") || entry.starts_with("LISTEN_PID=") ||
             entry.starts_with("LISTEN_FDNAMES=");
    });
    environment.push_back("LISTEN_FDS=" + std::to_string(activated_count));
    if (!activation->names.empty()) {
      std::string names;
      for (const auto& name : activation->names) names += (names.empty() ? "" : ":") + name;
      environment.push_back("LISTEN_FDNAMES=" + names);
    }
    environment.push_back("LISTEN_PID=" + std::string(24, '\0'));  // last: its address is taken below
  }

  std::vector<char*> argv;
  for (const auto& arg : args) argv.push_back(const_cast<char*>(arg.c_str()));
  argv.push_back(nullptr);
  std::vector<char*> envp;
  for (auto& entry : environment) envp.push_back(entry.data());
  envp.push_back(nullptr);
  std::string directory = cwd.string();
  char* listen_pid_digits = activation ? environment.back().data() + listen_pid_prefix : nullptr;

  unique_fd null_fd(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  if (null_fd.get() < 0) throw_errno("open /dev/null");
  unique_fd out_fd(::open(out.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644));
  if (out_fd.get() < 0) throw_errno("open " + out.string());
  unique_fd err_fd(::open(err.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644));
  if (err_fd.get() < 0) throw_errno("open " + err.string());
  int report[2];
  if (::pipe2(report, O_CLOEXEC) != 0) throw_errno("pipe2");
  unique_fd report_read(report[0]);
  unique_fd report_write(report[1]);
  pid_t parent = ::getpid();

  pid_t pid = ::fork();
  if (pid < 0) throw_errno("fork");
  if (pid == 0) {
    // Child: own process group (the test kills the group), default signal state, die
    // with the test process, cwd = the temp dir, stdio to the files, no inherited fds.
    struct failure {
      int step;
      int error;
    };
    int report_fd = report_write.get();
    auto fail = [&](int step) {
      failure f{step, errno};
      [[maybe_unused]] auto n = ::write(report_fd, &f, sizeof f);
      ::_exit(127);
    };
    ::setpgid(0, 0);
    sigset_t none;
    ::sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    struct sigaction default_action {};
    default_action.sa_handler = SIG_DFL;
    for (int sig = 1; sig < NSIG; ++sig) ::sigaction(sig, &default_action, nullptr);
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(126);
    if (::chdir(directory.c_str()) != 0) fail(1);
    if (activation) {
      // The inherited sockets go to 3, 4, ...: first move them (and the report pipe) above
      // that range so that no placement overwrites a source, then dup2 them into place
      // (dup2 clears close-on-exec on the copy only).
      const int floor = 3 + static_cast<int>(activated_count);
      int moved = ::fcntl(report_fd, F_DUPFD_CLOEXEC, floor);
      if (moved < 0) fail(5);
      report_fd = moved;
      for (std::size_t i = 0; i < activated_count; ++i) {
        staged_fds[i] = ::fcntl(activation->fds[i], F_DUPFD_CLOEXEC, floor);
        if (staged_fds[i] < 0) fail(5);
      }
      char digits[24];
      std::size_t length = 0;
      for (unsigned long value = static_cast<unsigned long>(::getpid()); value != 0; value /= 10) {
        digits[length++] = static_cast<char>('0' + value % 10);
      }
      for (std::size_t i = 0; i < length; ++i) listen_pid_digits[i] = digits[length - 1 - i];
      listen_pid_digits[length] = '\0';
    }
    if (::dup2(null_fd.get(), 0) < 0 || ::dup2(out_fd.get(), 1) < 0 || ::dup2(err_fd.get(), 2) < 0) fail(2);
    // Everything above 2 is close-on-exec after this, the report pipe included.
    if (::close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) != 0) fail(3);
    for (std::size_t i = 0; i < activated_count; ++i) {
      if (::dup2(staged_fds[i], 3 + static_cast<int>(i)) < 0) fail(5);
    }
    ::execve(argv[0], argv.data(), envp.data());
    fail(4);
  }
  // Parent: set the group too, so that kill(-pid) works even before the child runs.
  ::setpgid(pid, pid);
  report_write.reset();
  struct {
    int step;
    int error;
  } failure{};
  ssize_t n;
  do {
    n = ::read(report_read.get(), &failure, sizeof failure);
  } while (n < 0 && errno == EINTR);
  if (n == static_cast<ssize_t>(sizeof failure)) {
    int status = 0;
    ::waitpid(pid, &status, 0);
    static constexpr const char* steps[] = {"", "chdir", "dup2", "close_range", "execve", "socket activation"};
    throw std::system_error(failure.error, std::generic_category(),
                            std::string("starting: ") + steps[failure.step] + " " + args[0]);
  }
  return pid;
}

std::optional<exit_status> poll_exit(pid_t pid, std::chrono::milliseconds timeout) {
  auto deadline = clock_type::now() + timeout;
  for (;;) {
    int status = 0;
    pid_t reaped = ::waitpid(pid, &status, WNOHANG);
    if (reaped == pid) return exit_status::from_wait_status(status);
    if (reaped < 0 && errno != EINTR) return std::nullopt;  // not our child (already reaped)
    if (clock_type::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(5ms);
  }
}

std::string describe_group(pid_t pgid) {
  std::string text;
  for (pid_t member : testing::group_members(pgid)) {
    if (!text.empty()) text += "; ";
    text += testing::describe_process(member);
  }
  return text;
}

bool current_test_failed() {
  using namespace boost::unit_test;
  try {
    return !results_collector.results(framework::current_test_case().p_id).passed();
  } catch (...) {
    return false;  // not inside a test case
  }
}

std::string tail_lines(const std::string& text, std::size_t count) {
  std::deque<std::string> lines;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    lines.push_back(line);
    if (lines.size() > count) lines.pop_front();
  }
  std::string result;
  for (const auto& kept : lines) result += kept + "\n";
  return result;
}

}  // namespace

child_process::child_process(const std::vector<std::string>& argv, const fs::path& cwd, const fs::path& stdout_file,
                             const fs::path& stderr_file,
                             const std::vector<std::pair<std::string, std::string>>& extra_env)
    : pid_(spawn_in_group(argv, cwd, stdout_file, stderr_file, extra_env)) {}

child_process::~child_process() {
  try {
    if (!status_) running();
    if (!status_) {
      ::kill(-pid_, SIGKILL);
      status_ = poll_exit(pid_, 5s);
      if (!status_) BOOST_ERROR("process " << pid_ << " did not die of SIGKILL within 5 s");
    }
    if (!test_support::wait_group_gone(pid_, 2s)) {
      BOOST_ERROR("processes of group " << pid_
                                        << " are still alive 2 s after its leader exited: " << describe_group(pid_));
      ::kill(-pid_, SIGKILL);
      test_support::wait_group_gone(pid_, 2s);
    }
  } catch (const std::exception& e) {
    BOOST_ERROR("child_process cleanup: " << e.what());
  }
}

bool child_process::running() {
  if (status_) return false;
  int status = 0;
  pid_t reaped = ::waitpid(pid_, &status, WNOHANG);
  if (reaped == pid_) {
    status_ = exit_status::from_wait_status(status);
    return false;
  }
  return true;
}

std::optional<exit_status> child_process::wait_exit(std::chrono::milliseconds timeout) {
  if (!status_) status_ = poll_exit(pid_, timeout);
  return status_;
}

bool child_process::signal_group(int sig) {
  if (status_) return false;
  return ::kill(-pid_, sig) == 0;
}

bool child_process::wait_group_gone(std::chrono::milliseconds timeout) {
  return test_support::wait_group_gone(pid_, timeout);
}

json::object default_test_config() {
  json::object config;
  config["bind"] = json::array{"unix:app.sock"};
  config["control"] = "ctl.sock";
  config["workers"] = 2;
  config["log"] = json::object{{"format", "json"}, {"level", "info"}};
  return config;
}

server_process::server_process(server_options options) : config_(default_test_config()) {
  for (const auto& [key, value] : options.config) config_[key] = value;
  write_file(dir() / "preforkd.json", json::serialize(config_) + "\n");
  if (options.prepare) options.prepare(dir());
  std::vector<std::string> argv{preforkd_path().string(), "-c", "preforkd.json"};
  argv.insert(argv.end(), options.extra_args.begin(), options.extra_args.end());
  pid_ = spawn_in_group(argv, dir(), dir() / "stdout.log", dir() / "stderr.log", options.extra_env,
                        options.activation ? &*options.activation : nullptr);
}

server_process::~server_process() { cleanup(); }

void server_process::cleanup() noexcept {
  try {
    if (pid_ <= 0) return;
    if (!status_) running();
    if (!status_) {
      // Still running: the group leader exists, so -pid cannot name another group.
      ::kill(-pid_, SIGKILL);
      status_ = poll_exit(pid_, 5s);
      if (!status_) BOOST_ERROR("preforkd master " << pid_ << " did not die of SIGKILL within 5 s");
    }
    if (!test_support::wait_group_gone(pid_, 2s)) {
      BOOST_ERROR("processes of preforkd's group "
                  << pid_ << " are still alive 2 s after the master exited: " << describe_group(pid_));
      // Live members keep the group id reserved, so this kill reaches only them.
      ::kill(-pid_, SIGKILL);
      test_support::wait_group_gone(pid_, 2s);
    }
    if (current_test_failed()) {
      BOOST_TEST_MESSAGE("preforkd in " << dir().string() << " ended with "
                                        << (status_ ? status_->to_string() : std::string("unknown status"))
                                        << "; last lines of its stderr:\n"
                                        << tail_lines(stderr_text(), 40));
    }
  } catch (const std::exception& e) {
    BOOST_ERROR("server_process cleanup: " << e.what());
  }
}

bool server_process::running() {
  if (status_) return false;
  int status = 0;
  pid_t reaped = ::waitpid(pid_, &status, WNOHANG);
  if (reaped == pid_) {
    status_ = exit_status::from_wait_status(status);
    return false;
  }
  return true;
}

bool server_process::signal(int sig) {
  if (status_) return false;
  return ::kill(pid_, sig) == 0;
}

std::optional<exit_status> server_process::wait_exit(std::chrono::milliseconds timeout) {
  if (!status_) status_ = poll_exit(pid_, timeout);
  return status_;
}

bool server_process::wait_group_gone(std::chrono::milliseconds timeout) {
  return test_support::wait_group_gone(pid_, timeout);
}

std::vector<pid_t> server_process::worker_pids() {
  if (!running()) return {};
  return children_of(pid_);
}

endpoint server_process::unix_endpoint() const {
  if (auto bind = config_.if_contains("bind"); bind && bind->is_array()) {
    for (const auto& entry : bind->as_array()) {
      if (!entry.is_string()) continue;
      std::string_view text = entry.as_string();
      if (!text.starts_with("unix:")) continue;
      fs::path path(std::string(text.substr(5)));
      return endpoint::unix_socket(path.is_absolute() ? path : dir() / path);
    }
  }
  return endpoint::unix_socket(dir() / "app.sock");
}

std::vector<endpoint> server_process::listening_endpoints() const {
  std::vector<endpoint> endpoints;
  for (const auto& line : find_log("listening")) {
    if (auto parsed = endpoint::parse(log_string(line, "address"))) endpoints.push_back(*parsed);
  }
  return endpoints;
}

std::optional<endpoint> server_process::listening_endpoint(std::string_view bind) const {
  for (const auto& line : find_log("listening")) {
    if (log_string(line, "bind") == bind) return endpoint::parse(log_string(line, "address"));
  }
  return std::nullopt;
}

bool server_process::wait_ready(std::chrono::milliseconds timeout) {
  auto deadline = clock_type::now() + timeout;
  std::optional<std::size_t> expected_workers;
  if (auto workers = config_.if_contains("workers"); workers && workers->is_int64()) {
    expected_workers = static_cast<std::size_t>(workers->as_int64());
  }
  for (;;) {
    if (!running()) {
      last_error_ = "preforkd exited with " + status_->to_string() + " before it was ready";
      return false;
    }
    auto logged = listening_endpoints();
    endpoint target = logged.empty() ? unix_endpoint() : logged.front();
    auto response = http_get(target, "/", 2s);
    if (!response) {
      last_error_ = "GET / on " + target.to_string() + ": " + response.error().message();
    } else if (response->status != 200) {
      last_error_ = "GET / on " + target.to_string() + ": status " + std::to_string(response->status);
    } else {
      auto workers = worker_pids();
      std::size_t logged_ready = 0;
      for (const auto& line : find_log("worker ready")) {
        auto pid = event_pid(line);
        if (pid && std::find(workers.begin(), workers.end(), static_cast<pid_t>(*pid)) != workers.end()) {
          ++logged_ready;
        }
      }
      if (expected_workers && workers.size() != *expected_workers) {
        last_error_ = "serving, but the master has " + std::to_string(workers.size()) + " children, expected " +
                      std::to_string(*expected_workers);
      } else if (logged_ready < workers.size()) {
        last_error_ = "serving, but only " + std::to_string(logged_ready) + " of " + std::to_string(workers.size()) +
                      " children have a \"worker ready\" log line";
      } else {
        last_error_.clear();
        return true;
      }
    }
    if (clock_type::now() >= deadline) {
      last_error_ = "not ready after " + std::to_string(timeout.count()) + " ms: " + last_error_;
      return false;
    }
    std::this_thread::sleep_for(20ms);
  }
}

void server_process::require_ready(std::chrono::milliseconds timeout) {
  bool ready = wait_ready(timeout);
  // Built after wait_ready(): a message expression in the macro may be evaluated first.
  std::string why = ready ? std::string() : diagnostics();
  BOOST_REQUIRE_MESSAGE(ready, why);
}

std::vector<json::object> server_process::log_lines() const { return prefork::testing::json_lines(stderr_text()); }

std::vector<json::object> server_process::find_log(std::string_view msg) const {
  auto lines = log_lines();
  std::erase_if(lines, [&](const json::object& line) { return log_string(line, "msg") != msg; });
  return lines;
}

std::optional<json::object> server_process::wait_for_log(std::string_view msg, std::chrono::milliseconds timeout,
                                                         const std::function<bool(const json::object&)>& match) const {
  auto deadline = clock_type::now() + timeout;
  for (;;) {
    for (auto& line : find_log(msg)) {
      if (!match || match(line)) return std::move(line);
    }
    if (clock_type::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(20ms);
  }
}

std::string server_process::stderr_text() const { return read_file(dir() / "stderr.log"); }
std::string server_process::stdout_text() const { return read_file(dir() / "stdout.log"); }

std::string server_process::diagnostics(std::size_t lines) const {
  std::string text;
  if (!last_error_.empty()) text += last_error_ + "\n";
  if (status_) text += "preforkd: " + status_->to_string() + "\n";
  return text + "stderr tail:\n" + tail_lines(stderr_text(), lines);
}

}  // namespace prefork::test_support
