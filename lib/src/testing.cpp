#include "prefork/testing.hpp"

#include "prefork/control_client.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/generic/stream_protocol.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
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
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <deque>
#include <fstream>
#include <iostream>
#include <mutex>
#include <sstream>
#include <system_error>

extern char** environ;

namespace prefork::testing {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
namespace json = boost::json;
namespace fs = std::filesystem;
namespace bp = boost::process::v2;
using steady = std::chrono::steady_clock;
using namespace std::chrono_literals;

namespace {

[[noreturn]] void throw_errno(const std::string& what) {
  throw std::system_error(errno, std::generic_category(), what);
}

std::string milliseconds_text(std::chrono::milliseconds duration) { return std::to_string(duration.count()) + " ms"; }

bool equal_ignoring_case(std::string_view a, std::string_view b) {
  return std::equal(a.begin(), a.end(), b.begin(), b.end(), [](char x, char y) {
    return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
  });
}

std::string tail_lines(const std::string& text, std::size_t count) {
  std::deque<std::string> lines;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    lines.push_back(std::move(line));
    if (lines.size() > count) lines.pop_front();
  }
  std::string result;
  for (const auto& kept : lines) result += kept + "\n";
  return result;
}

std::string read_whole_file(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// --- /proc --------------------------------------------------------------------------------

struct proc_stat {
  std::string command;
  char state = '?';
  pid_t parent = 0;
  pid_t group = 0;
};

std::optional<proc_stat> read_stat(pid_t pid) {
  std::string text = read_whole_file("/proc/" + std::to_string(pid) + "/stat");
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

// --- addresses ----------------------------------------------------------------------------

// A bind-syntax address as an endpoint any stream socket can connect to.
std::optional<asio::generic::stream_protocol::endpoint> parse_endpoint(std::string_view address) {
  if (address.starts_with("unix:")) {
    auto path = address.substr(5);
    if (path.empty()) return std::nullopt;
    asio::local::stream_protocol::endpoint local{std::string(path)};
    return asio::generic::stream_protocol::endpoint(local.data(), local.size());
  }
  std::string_view host;
  std::string_view port_text;
  if (address.starts_with("[")) {
    auto end = address.find("]:");
    if (end == std::string_view::npos) return std::nullopt;
    host = address.substr(1, end - 1);
    port_text = address.substr(end + 2);
  } else {
    auto colon = address.rfind(':');
    if (colon == std::string_view::npos) return std::nullopt;
    host = address.substr(0, colon);
    port_text = address.substr(colon + 1);
  }
  unsigned port = 0;
  auto [end, error] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (error != std::errc{} || end != port_text.data() + port_text.size() || port == 0 || port > 65535)
    return std::nullopt;
  boost::system::error_code ec;
  auto ip = asio::ip::make_address(std::string(host), ec);
  if (ec) return std::nullopt;
  asio::ip::tcp::endpoint tcp(ip, static_cast<unsigned short>(port));
  return asio::generic::stream_protocol::endpoint(tcp.data(), tcp.size());
}

// --- the child's set-up (Boost.Process v2 initializer) --------------------------------------

// Runs in the forked child before execve. The parent may have other threads, so only
// async-signal-safe calls: everything it needs was prepared before the fork.
struct child_setup {
  const char* directory;
  int stdin_fd;
  int stdout_fd;
  int stderr_fd;
  pid_t parent;

  template <class Launcher>
  boost::system::error_code on_exec_setup(Launcher&, const bp::filesystem::path&, const char* const*) {
    // Own process group: the harness signals and inspects the server as one group.
    if (::setpgid(0, 0) != 0) return {errno, boost::system::system_category()};
    // Default signal state: the test framework's handlers and mask are not the server's.
    sigset_t none;
    ::sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    struct sigaction default_action {};
    default_action.sa_handler = SIG_DFL;
    for (int sig = 1; sig < NSIG; ++sig) ::sigaction(sig, &default_action, nullptr);
    // Die with the test: a test process killed by a timeout leaves no server behind.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(126);  // the test died before prctl took effect
    if (::chdir(directory) != 0) return {errno, boost::system::system_category()};
    if (::dup2(stdin_fd, 0) < 0 || ::dup2(stdout_fd, 1) < 0 || ::dup2(stderr_fd, 2) < 0)
      return {errno, boost::system::system_category()};
    // 1.81's close_all leaves gaps in its whitelist open: make everything above 2
    // close-on-exec (the launcher's error pipe included, which is what it expects).
    if (::close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) != 0) return {errno, boost::system::system_category()};
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

bool is_supervisor_variable(std::string_view entry) {
  // A test run under systemd must not make the server talk to systemd or adopt sockets.
  for (std::string_view name :
       {"NOTIFY_SOCKET=", "LISTEN_FDS=", "LISTEN_PID=", "LISTEN_FDNAMES=", "WATCHDOG_USEC=", "WATCHDOG_PID="}) {
    if (entry.starts_with(name)) return true;
  }
  return false;
}

std::vector<std::string> child_environment(const std::vector<std::pair<std::string, std::string>>& extra) {
  std::vector<std::string> environment;
  for (char** entry = environ; *entry != nullptr; ++entry) {
    std::string_view text(*entry);
    if (is_supervisor_variable(text)) continue;
    bool replaced =
        std::any_of(extra.begin(), extra.end(), [&](const auto& kv) { return text.starts_with(kv.first + "="); });
    if (!replaced) environment.emplace_back(text);
  }
  for (const auto& [name, value] : extra) environment.push_back(name + "=" + value);
  return environment;
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

fs::path make_temp_directory() {
  // Unix socket paths are limited to 107 bytes: a long $TMPDIR is not used.
  std::string base = "/tmp";
  if (const char* tmp = std::getenv("TMPDIR"); tmp != nullptr && *tmp != '\0' && std::string_view(tmp).size() < 48)
    base = tmp;
  std::string pattern = base + "/prefork-test.XXXXXX";
  if (::mkdtemp(pattern.data()) == nullptr) throw_errno("mkdtemp " + pattern);
  return pattern;
}

std::string control_failure_code(control_failure failure) {
  switch (failure) {
    case control_failure::unreachable: return "unreachable";
    case control_failure::timeout: return "timeout";
    case control_failure::disconnected: return "disconnected";
    case control_failure::bad_reply: return "bad_reply";
    case control_failure::remote: return "remote";
  }
  return "unknown";
}

std::int64_t number_or(const json::object& object, std::string_view key, std::int64_t fallback) {
  auto found = object.find(key);
  if (found == object.end()) return fallback;
  if (auto n = found->value().if_int64()) return *n;
  if (auto n = found->value().if_uint64()) return static_cast<std::int64_t>(*n);
  return fallback;
}

}  // namespace

// --- small public helpers -------------------------------------------------------------------

std::optional<std::string> http_response::header(std::string_view name) const {
  for (const auto& [key, value] : headers)
    if (equal_ignoring_case(key, name)) return value;
  return std::nullopt;
}

control_error::control_error(std::string code, const std::string& message)
    : std::runtime_error(message), code_(std::move(code)) {}

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

json::object default_config() {
  return {{"bind", json::array{"unix:app.sock"}},
          {"control", "ctl.sock"},
          {"workers", 2},
          {"graceful_timeout", 5},
          {"log", json::object{{"level", "info"}, {"format", "json"}}}};
}

// --- http_session -------------------------------------------------------------------------

// Blocking calls with deadlines in the manner of Asio's blocking_*_client_timeout examples:
// start one async operation, run the private io_context until it completes or the deadline
// passes, and on timeout close the socket and drain the aborted handler.
struct http_session::impl {
  std::string address;
  asio::generic::stream_protocol::endpoint endpoint;
  std::chrono::milliseconds timeout;
  asio::io_context io;
  asio::generic::stream_protocol::socket socket{io};
  beast::flat_buffer buffer;
  bool reused = false;  // a response was read on this connection

  bool run_until(const bool& done, steady::time_point deadline) {
    io.restart();
    auto now = steady::now();
    if (now < deadline) io.run_for(deadline - now);
    if (done) return true;
    close();
    io.restart();
    io.run();  // completes the aborted operation so that nothing refers to this frame
    return false;
  }

  void close() noexcept {
    boost::system::error_code ignored;
    socket.close(ignored);
    buffer.clear();
    reused = false;
  }

  boost::system::error_code connect(steady::time_point deadline) {
    close();
    bool done = false;
    boost::system::error_code result;
    socket.async_connect(endpoint, [&](boost::system::error_code ec) {
      result = ec;
      done = true;
    });
    if (!run_until(done, deadline)) return boost::system::error_code(asio::error::timed_out);
    if (result) close();
    return result;
  }

  // One request and response on the open connection. `got_some` says whether any byte of
  // a response arrived.
  boost::system::result<http_response> exchange(const std::string& request, bool head, steady::time_point deadline,
                                                bool& got_some) {
    got_some = false;
    bool done = false;
    boost::system::error_code result;
    asio::async_write(socket, asio::buffer(request), [&](boost::system::error_code ec, std::size_t) {
      result = ec;
      done = true;
    });
    if (!run_until(done, deadline)) return boost::system::error_code(asio::error::timed_out);
    if (result) {
      close();
      return result;
    }
    http::response_parser<http::string_body> parser;
    parser.header_limit(64 * 1024);
    parser.body_limit(std::uint64_t{256} * 1024 * 1024);
    if (head) parser.skip(true);
    done = false;
    http::async_read(socket, buffer, parser, [&](boost::system::error_code ec, std::size_t) {
      result = ec;
      done = true;
    });
    if (!run_until(done, deadline)) {
      got_some = parser.got_some();
      return boost::system::error_code(asio::error::timed_out);
    }
    got_some = parser.got_some();
    if (result) {
      close();
      return result;
    }
    auto message = parser.release();
    http_response response;
    response.status = message.result_int();
    for (const auto& field : message) response.headers.emplace_back(field.name_string(), field.value());
    response.body = std::move(message.body());
    if (message.keep_alive())
      reused = true;
    else
      close();
    return response;
  }
};

http_session::http_session(std::string address, std::chrono::milliseconds timeout) : impl_(std::make_unique<impl>()) {
  auto endpoint = parse_endpoint(address);
  if (!endpoint) throw std::invalid_argument("not an address in bind syntax: \"" + address + "\"");
  impl_->address = std::move(address);
  impl_->endpoint = *endpoint;
  impl_->timeout = timeout;
}

http_session::~http_session() = default;
http_session::http_session(http_session&&) noexcept = default;
http_session& http_session::operator=(http_session&&) noexcept = default;

boost::system::result<http_response> http_session::try_request(std::string_view method, std::string_view target,
                                                               std::string_view body) {
  std::string request;
  request.reserve(64 + target.size() + body.size());
  request.append(method).append(" ").append(target).append(" HTTP/1.1\r\nHost: localhost\r\n");
  if (!body.empty() || method == "POST" || method == "PUT")
    request.append("Content-Length: ").append(std::to_string(body.size())).append("\r\n");
  request.append("\r\n").append(body);
  const bool head = method == "HEAD";
  const bool idempotent = method == "GET" || head || method == "PUT" || method == "DELETE" || method == "OPTIONS";
  const auto deadline = steady::now() + impl_->timeout;
  for (int attempt = 0;; ++attempt) {
    const bool reused = impl_->socket.is_open() && impl_->reused;
    if (!impl_->socket.is_open()) {
      if (auto ec = impl_->connect(deadline)) return ec;
    }
    bool got_some = false;
    auto response = impl_->exchange(request, head, deadline, got_some);
    if (response) return response;
    const auto& ec = response.error();
    // The server closed a kept-alive connection before this request reached a handler.
    const bool closed_idle = ec == http::error::end_of_stream || ec == asio::error::eof ||
                             ec == asio::error::connection_reset || ec == asio::error::broken_pipe;
    if (attempt == 0 && reused && idempotent && !got_some && closed_idle) {
      impl_->close();
      continue;
    }
    return ec;
  }
}

http_response http_session::get(std::string_view target) {
  auto response = try_request("GET", target);
  if (!response)
    throw std::runtime_error("GET " + std::string(target) + " on " + impl_->address + ": " +
                             response.error().message());
  return std::move(*response);
}

void http_session::close() noexcept { impl_->close(); }

const std::string& http_session::address() const noexcept { return impl_->address; }

// --- server -------------------------------------------------------------------------------

struct server::impl {
  using process_handle = bp::basic_process_handle<asio::io_context::executor_type>;

  server_options options;
  fs::path directory;
  json::object config;
  fs::path control_path;
  mutable std::mutex address_mutex;      // session() may be called from other threads
  std::string first_address;             // bind syntax; from `status` (at first from the config)
  asio::io_context io;                   // owns the process handle's pidfd; never run
  std::optional<process_handle> master;  // the one reaper of the master
  unique_fd master_fd;                   // a pidfd of our own, to poll and to signal
  pid_t pid = -1;
  std::optional<exit_status> exit;
  bool stopped = false;  // stop() finished (or the hard clean-up ran)
  control_client control;
  std::optional<http_session> session;

  ~impl() {
    if (!stopped) kill_everything();
    if (!directory.empty() && std::getenv("PREFORK_KEEP_TMP") == nullptr) {
      std::error_code ignored;
      fs::remove_all(directory, ignored);
    }
  }

  void launch() {
    if (options.program.empty()) {
      const char* from_environment = std::getenv("PREFORKD");
      if (from_environment == nullptr || *from_environment == '\0')
        throw std::runtime_error("prefork::testing::server: no program given and PREFORKD is not set");
      options.program = from_environment;
    }
    if (::access(options.program.c_str(), X_OK) != 0)
      throw std::runtime_error("prefork::testing::server: " + options.program.string() +
                               " is not executable: " + std::strerror(errno));
    options.program = fs::absolute(options.program);

    directory = make_temp_directory();
    config = default_config();
    for (const auto& [key, value] : options.config) config[key] = value;
    {
      std::ofstream out(directory / "preforkd.json", std::ios::trunc);
      out << json::serialize(config) << "\n";
      if (!out.flush()) throw std::runtime_error("cannot write " + (directory / "preforkd.json").string());
    }
    if (auto control_value = config.find("control");
        control_value != config.end() && control_value->value().is_string()) {
      fs::path configured(std::string(control_value->value().get_string()));
      control_path = configured.is_absolute() ? configured : directory / configured;
    }
    if (auto unix_socket = first_unix_bind()) first_address = "unix:" + unix_socket->string();

    std::vector<std::string> arguments{"-c", "preforkd.json"};
    arguments.insert(arguments.end(), options.arguments.begin(), options.arguments.end());
    std::vector<std::string> environment = child_environment(options.environment);
    std::vector<const char*> envp;
    for (const auto& entry : environment) envp.push_back(entry.c_str());
    envp.push_back(nullptr);

    unique_fd null_fd = open_or_throw("/dev/null", O_RDONLY);
    unique_fd out_fd = open_or_throw(directory / "stdout.log", O_WRONLY | O_CREAT | O_APPEND);
    unique_fd err_fd = open_or_throw(directory / "stderr.log", O_WRONLY | O_CREAT | O_APPEND);
    const std::string directory_text = directory.string();
    child_setup setup{directory_text.c_str(), null_fd.get(), out_fd.get(), err_fd.get(), ::getpid()};

    bp::posix::default_launcher launcher;
    launcher.env = envp.data();
    boost::system::error_code ec;
    auto process = launcher(io.get_executor(), ec, bp::filesystem::path(options.program.string()), arguments, setup);
    if (ec) {
      // 1.81 returns an empty handle after a failed exec: reap the child that tried it.
      if (launcher.pid > 0) ::waitpid(launcher.pid, nullptr, 0);
      throw std::runtime_error("cannot start " + options.program.string() + ": " + ec.message());
    }
    pid = process.id();
    // Not reaped yet, so the pid cannot have been reused.
    master_fd = unique_fd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
    if (master_fd.get() < 0) {
      auto error = errno;
      process.terminate(ec);
      process.wait(ec);
      throw std::system_error(error, std::generic_category(), "pidfd_open");
    }
    // The handle (a pidfd) is the one reaper; detached from basic_process, whose
    // destructor would SIGKILL and waitpid the pid even after we reaped it.
    master.emplace(process.detach());
  }

  void set_first_address(std::string address) {
    std::lock_guard lock(address_mutex);
    if (first_address != address) first_address = std::move(address);
  }

  // The first listener's address; throws when it is not known yet.
  std::string listener_address() const {
    std::lock_guard lock(address_mutex);
    if (first_address.empty()) throw std::runtime_error("the server's listener address is not known yet");
    return first_address;
  }

  std::optional<fs::path> first_unix_bind() const {
    auto bind = config.find("bind");
    if (bind == config.end() || !bind->value().is_array()) return std::nullopt;
    for (const auto& entry : bind->value().get_array()) {
      if (!entry.is_string()) continue;
      std::string_view text = entry.get_string();
      if (!text.starts_with("unix:")) continue;
      fs::path path(std::string(text.substr(5)));
      return path.is_absolute() ? path : directory / path;
    }
    return std::nullopt;
  }

  // Reaps the master if it exited; true while it runs.
  bool running() {
    if (exit) return false;
    if (!master) return false;
    int status = 0;
    boost::system::error_code ec;
    if (master->running(status, ec)) return true;
    if (ec) {
      // Not our child any more (reaped elsewhere): nothing to learn.
      exit = exit_status{};
    } else {
      exit = exit_status::from_wait_status(status);
    }
    master.reset();
    return false;
  }

  // Waits up to `timeout` on the pidfd; true once the master exited (and was reaped).
  bool wait_for_exit(std::chrono::milliseconds timeout) {
    const auto deadline = steady::now() + timeout;
    for (;;) {
      if (!running()) return true;
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - steady::now());
      if (left.count() <= 0) return false;
      pollfd descriptor{master_fd.get(), POLLIN, 0};
      ::poll(&descriptor, 1, static_cast<int>(std::min<std::int64_t>(left.count(), 1000)) + 1);
    }
  }

  // Sleeps up to `duration`, waking early if the master exits.
  void pause(std::chrono::microseconds duration) {
    const timespec timeout{static_cast<time_t>(duration.count() / 1000000),
                           static_cast<long>(duration.count() % 1000000) * 1000};
    pollfd descriptor{master ? master_fd.get() : -1, POLLIN, 0};  // a negative fd is ignored
    ::ppoll(&descriptor, 1, &timeout, nullptr);
  }

  bool send_to_master(int signal_number) {
    if (!running()) return false;
    // Through the pidfd: never a recycled pid. (Debian 12's <sys/pidfd.h> lacks extern "C".)
    return ::syscall(SYS_pidfd_send_signal, master_fd.get(), signal_number, nullptr, 0) == 0;
  }

  // SIGKILL to the group. Safe while the master is unreaped (a zombie still holds the
  // group id) or while members are seen (the id is in use, so it was not reused).
  void kill_group() {
    if (pid > 0 && (master || !group_members(pid).empty())) ::kill(-pid, SIGKILL);
  }

  bool wait_group_gone(std::chrono::milliseconds timeout) {
    const auto deadline = steady::now() + timeout;
    for (;;) {
      if (group_members(pid).empty()) return true;
      if (steady::now() >= deadline) return false;
      ::poll(nullptr, 0, 10);
    }
  }

  std::string describe_group() const {
    std::string text;
    for (pid_t member : group_members(pid)) {
      if (!text.empty()) text += "; ";
      text += describe_process(member);
    }
    return text;
  }

  // The clean-up of last resort (constructor failure, destructor after a failed stop):
  // kill everything, reap the master, never throw.
  void kill_everything() noexcept {
    stopped = true;
    if (pid <= 0) return;
    kill_group();
    wait_for_exit(options.stop_timeout);
    if (!wait_group_gone(options.stop_timeout)) kill_group();
  }

  exit_status stop(stop_mode mode) {
    if (stopped) return exit.value_or(exit_status{});
    stopped = true;
    // Idle connections would only make a graceful stop wait for their keep-alive timeout.
    if (session) session->close();
    control.close();
    if (running()) {
      send_to_master(mode == stop_mode::graceful ? SIGTERM : SIGINT);
      if (!wait_for_exit(options.stop_timeout)) {
        kill_group();
        wait_for_exit(options.stop_timeout);
      }
    }
    if (!wait_group_gone(options.stop_timeout)) {
      std::string survivors = describe_group();
      kill_group();
      wait_group_gone(options.stop_timeout);
      throw std::runtime_error("prefork::testing::server: processes of group " + std::to_string(pid) +
                               " outlived the master (" + exit.value_or(exit_status{}).to_string() + ") by " +
                               milliseconds_text(options.stop_timeout) + " and were killed: " + survivors);
    }
    return exit.value_or(exit_status{});
  }

  boost::system::result<json::value, control_client_error> try_control(const json::object& request,
                                                                       std::chrono::milliseconds timeout) {
    const auto deadline = steady::now() + timeout;
    if (!control.is_open()) {
      auto connected = control.connect(control_path, timeout);
      if (!connected) return connected.error();
    }
    auto left = std::max(std::chrono::duration_cast<std::chrono::milliseconds>(deadline - steady::now()), 1ms);
    return control.call(request, left);
  }

  json::value call(const json::object& request, std::chrono::milliseconds timeout) {
    auto result = try_control(request, timeout);
    if (!result) {
      const auto& error = result.error();
      std::string code = error.failure == control_failure::remote ? error.code : control_failure_code(error.failure);
      throw control_error(code, json::serialize(request) + ": " + error.message);
    }
    return std::move(*result);
  }

  std::string log_tail(std::size_t lines) const { return tail_lines(read_whole_file(directory / "stderr.log"), lines); }

  // Polls `status` (or whatever `check` asks) until `check` says done; `check` fills
  // `seen` with what it saw, for the message. Throws on timeout or when the master exits.
  void wait_until(const std::function<bool(std::string& seen)>& check, std::chrono::milliseconds timeout,
                  std::string_view what) {
    const auto started = steady::now();
    const auto deadline = started + timeout;
    // Finely at first (a server is often ready within a few milliseconds), then coarser
    // so that a slow start does not load the master with status requests.
    std::chrono::microseconds interval = 500us;
    std::string seen = "nothing yet";
    for (;;) {
      if (!running()) {
        throw std::runtime_error("prefork::testing::server: " + options.program.filename().string() + " exited (" +
                                 exit->to_string() + ") while waiting for " + std::string(what) +
                                 "; last stderr lines:\n" + log_tail(30));
      }
      if (check(seen)) return;
      if (steady::now() >= deadline) break;
      pause(interval);
      if (steady::now() - started > 20ms) interval = std::min<std::chrono::microseconds>(interval * 2, 20ms);
    }
    throw std::runtime_error("prefork::testing::server: no " + std::string(what) + " within " +
                             milliseconds_text(timeout) + " (last seen: " + seen + "); last stderr lines:\n" +
                             log_tail(30));
  }

  // One status poll: the reply's `workers` object, or nullopt (with `seen` saying why).
  std::optional<json::object> poll_workers(std::string& seen) {
    auto status = try_control({{"cmd", "status"}}, options.request_timeout);
    if (!status) {
      seen = status.error().message;
      if (status.error().failure == control_failure::remote || status.error().failure == control_failure::bad_reply)
        throw control_error(status.error().code, "status: " + status.error().message);
      return std::nullopt;
    }
    const json::object* reply = status->if_object();
    const json::value* counts = reply ? reply->if_contains("workers") : nullptr;
    if (counts == nullptr || !counts->is_object()) {
      seen = "a status without workers: " + json::serialize(*status);
      return std::nullopt;
    }
    seen = "workers " + json::serialize(*counts);
    if (const json::value* listeners = reply->if_contains("listeners"); listeners && listeners->is_array()) {
      const auto& list = listeners->get_array();
      if (!list.empty() && list[0].is_object())
        if (const json::value* address = list[0].get_object().if_contains("address"); address && address->is_string())
          set_first_address(std::string(address->get_string()));
    }
    return counts->get_object();
  }

  void wait_ready(std::chrono::milliseconds timeout) {
    wait_until(
        [&](std::string& seen) {
          auto counts = poll_workers(seen);
          if (!counts) return false;
          // A paused worker is started and serving its connections: it counts as ready.
          auto ready = number_or(*counts, "ready", 0) + number_or(*counts, "paused", 0);
          return ready >= number_or(*counts, "desired", 1) && number_or(*counts, "starting", 1) == 0;
        },
        timeout, "readiness of every worker");
  }

  pid_t worker_pid(int id) {
    auto list = call({{"cmd", "workers"}}, options.request_timeout);
    for (const auto& entry : list.as_array()) {
      const auto& worker = entry.as_object();
      if (number_or(worker, "id", -1) == id) {
        auto pid_value = number_or(worker, "pid", -1);
        if (pid_value > 0) return static_cast<pid_t>(pid_value);
      }
    }
    throw control_error("not_found", "no live worker with id " + std::to_string(id));
  }

  void wait_replaced(pid_t old_pid) {
    wait_until(
        [&](std::string& seen) {
          auto list = try_control({{"cmd", "workers"}}, options.request_timeout);
          if (!list || !list->is_array()) {
            seen = list ? "workers: not an array" : list.error().message;
            return false;
          }
          for (const auto& entry : list->get_array()) {
            if (entry.is_object() && number_or(entry.get_object(), "pid", -1) == old_pid) {
              seen = "pid " + std::to_string(old_pid) + " still a worker";
              return false;
            }
          }
          auto counts = poll_workers(seen);
          if (!counts) return false;
          auto ready = number_or(*counts, "ready", 0) + number_or(*counts, "paused", 0);
          return ready >= number_or(*counts, "desired", 1) && number_or(*counts, "starting", 1) == 0;
        },
        options.start_timeout, "replacement of worker pid " + std::to_string(old_pid));
  }
};

server::server(server_options options) : impl_(std::make_unique<impl>()), start_timeout_(options.start_timeout) {
  impl_->options = std::move(options);
  try {
    impl_->launch();
    if (impl_->options.wait == start_wait::until_ready) impl_->wait_ready(impl_->options.start_timeout);
  } catch (...) {
    impl_->kill_everything();
    throw;
  }
}

server::~server() {
  try {
    impl_->stop(stop_mode::graceful);
  } catch (const std::exception& e) {
    impl_->kill_everything();
    if (impl_->options.on_stop_failure) {
      try {
        impl_->options.on_stop_failure(e.what());
      } catch (...) {
        // A reporter that throws must not terminate the test from a destructor.
      }
    } else {
      std::cerr << e.what() << "\n";
      std::abort();
    }
  }
}

const fs::path& server::directory() const noexcept { return impl_->directory; }
pid_t server::pid() const noexcept { return impl_->pid; }
const json::object& server::config() const noexcept { return impl_->config; }
fs::path server::control_path() const { return impl_->control_path; }

std::string server::address() {
  std::string seen;
  if (impl_->poll_workers(seen)) return impl_->listener_address();
  if (!impl_->running()) throw std::runtime_error("the server is not running");
  throw std::runtime_error("no listener address: " + seen);
}

fs::path server::socket_path() const {
  auto path = impl_->first_unix_bind();
  if (!path) throw std::runtime_error("the server's config binds no Unix socket");
  return *path;
}

std::string server::log_text() const { return read_whole_file(impl_->directory / "stderr.log"); }
std::string server::log_tail(std::size_t lines) const { return impl_->log_tail(lines); }

void server::wait_ready(std::chrono::milliseconds timeout) { impl_->wait_ready(timeout); }
bool server::running() { return impl_->running(); }

std::optional<exit_status> server::wait_exit(std::chrono::milliseconds timeout) {
  if (impl_->wait_for_exit(timeout)) return impl_->exit;
  return std::nullopt;
}

const std::optional<exit_status>& server::master_exit() const noexcept { return impl_->exit; }

exit_status server::stop(stop_mode mode) { return impl_->stop(mode); }

json::value server::control(json::object request) { return impl_->call(request, impl_->options.request_timeout); }
json::object server::status() { return control({{"cmd", "status"}}).as_object(); }
json::array server::workers() { return control({{"cmd", "workers"}}).as_array(); }
json::object server::stats() { return control({{"cmd", "stats"}}).as_object(); }

http_response server::get(std::string_view target) { return http().get(target); }

http_session& server::http() {
  if (!impl_->session) impl_->session.emplace(session());
  return *impl_->session;
}

http_session server::session() const { return http_session(impl_->listener_address(), impl_->options.request_timeout); }

socket_type server::connect(const asio::any_io_executor& executor) const {
  const std::string address = impl_->listener_address();
  auto endpoint = parse_endpoint(address);
  if (!endpoint) throw std::runtime_error("cannot connect to \"" + address + "\"");
  socket_type socket(executor);
  socket.connect(*endpoint);
  return socket;
}

pid_t server::kill_worker(int id, int signal_number, completion wait) {
  if (signal_number != SIGTERM && signal_number != SIGKILL) return signal_worker(id, signal_number, wait);
  auto result = control({{"cmd", "kill_worker"}, {"id", id}, {"signal", signal_number == SIGTERM ? "TERM" : "KILL"}});
  const json::object* reply = result.if_object();
  auto killed = reply ? number_or(*reply, "pid", -1) : -1;
  if (killed <= 0) throw control_error("bad_reply", "kill_worker: no pid in " + json::serialize(result));
  if (wait == completion::wait) impl_->wait_replaced(static_cast<pid_t>(killed));
  return static_cast<pid_t>(killed);
}

pid_t server::signal_worker(int id, int signal_number, completion wait) {
  pid_t worker = impl_->worker_pid(id);
  if (::kill(worker, signal_number) != 0) throw_errno("kill " + std::to_string(worker));
  if (wait == completion::wait) impl_->wait_replaced(worker);
  return worker;
}

void server::pause_worker(int id) { control({{"cmd", "pause_worker"}, {"id", id}}); }
void server::resume_worker(int id) { control({{"cmd", "resume_worker"}, {"id", id}}); }

std::uint64_t server::reload(completion wait) {
  const bool waiting = wait == completion::wait;
  auto timeout = waiting ? impl_->options.start_timeout + impl_->options.stop_timeout : impl_->options.request_timeout;
  auto result = impl_->call({{"cmd", "reload"}, {"wait", waiting}}, timeout);
  const json::object* reply = result.if_object();
  auto generation = reply ? number_or(*reply, "generation", -1) : -1;
  if (generation < 0) throw control_error("bad_reply", "reload: no generation in " + json::serialize(result));
  return static_cast<std::uint64_t>(generation);
}

void server::scale(int workers, completion wait) {
  control({{"cmd", "scale"}, {"workers", workers}});
  if (wait == completion::no_wait) return;
  impl_->wait_until(
      [&](std::string& seen) {
        auto counts = impl_->poll_workers(seen);
        if (!counts) return false;
        return number_or(*counts, "desired", -1) == workers && number_or(*counts, "ready", -1) == workers &&
               number_or(*counts, "starting", 1) == 0 && number_or(*counts, "draining", 1) == 0;
      },
      impl_->options.start_timeout, "scale to " + std::to_string(workers) + " workers");
}

void server::signal(int signal_number) {
  if (!impl_->send_to_master(signal_number))
    throw std::runtime_error("cannot signal the master " + std::to_string(impl_->pid) + ": it has exited");
}

}  // namespace prefork::testing
