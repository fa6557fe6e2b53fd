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

control_error::control_error(std::string code, const std::string& message)
    : std::runtime_error(message), code_(std::move(code)) {}

std::vector<json::object> json_lines(std::string_view text) {
  std::vector<json::object> lines;
  while (!text.empty()) {
    auto end = text.find('\n');
    std::string_view line = text.substr(0, end);
    text = end == std::string_view::npos ? std::string_view() : text.substr(end + 1);
    if (line.empty() || line.front() != '{') continue;
    boost::system::error_code ec;
    auto value = json::parse(line, ec);
    if (!ec && value.is_object()) lines.push_back(std::move(value.get_object()));
  }
  return lines;
}

json::object default_config() {
  return {{"bind", json::array{"unix:app.sock"}},
          {"control", "ctl.sock"},
          {"workers", 2},
          {"graceful_timeout", 5},
          {"log", json::object{{"level", "info"}, {"format", "json"}}}};
}

struct server::impl {
  server_options options;
  std::optional<temp_directory> directory_owner;  // declared before `master`: removed after it stopped
  fs::path directory;
  json::object config;
  fs::path control_path;
  mutable std::mutex address_mutex;  // session() may be called from other threads
  std::string first_address;         // bind syntax; from `status` (at first from the config)
  std::optional<process> master;
  pid_t pid = -1;
  bool stopped = false;  // stop() finished (or the hard clean-up ran)
  control_client control;
  std::optional<http_session> session;

  ~impl() {
    if (!stopped) kill_everything();
  }

  void launch() {
    if (options.program.empty()) {
      const char* from_environment = std::getenv("PREFORKD");
      if (from_environment == nullptr || *from_environment == '\0')
        throw std::runtime_error("prefork::testing::server: no program given and PREFORKD is not set");
      options.program = from_environment;
    }
    options.program = fs::absolute(options.program);

    directory_owner.emplace();
    directory = directory_owner->path();
    config = default_config();
    for (const auto& [key, value] : options.config) config[key] = value;
    write_file(directory / "preforkd.json", json::serialize(config) + "\n");
    if (auto control_value = config.find("control");
        control_value != config.end() && control_value->value().is_string()) {
      fs::path configured(std::string(control_value->value().get_string()));
      control_path = configured.is_absolute() ? configured : directory / configured;
    }
    if (auto unix_socket = first_unix_bind()) first_address = "unix:" + unix_socket->string();
    if (options.prepare) options.prepare(directory);

    process_options child;
    child.arguments = {"-c", "preforkd.json"};
    child.arguments.insert(child.arguments.end(), options.arguments.begin(), options.arguments.end());
    child.directory = directory;
    child.environment = options.environment;
    child.stdout_file = directory / "stdout.log";
    child.stderr_file = directory / "stderr.log";
    child.activation = options.activation;
    try {
      master.emplace(options.program, child);
    } catch (const std::runtime_error& e) {
      throw std::runtime_error(std::string("prefork::testing::server: ") + e.what());
    }
    pid = master->pid();
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

  bool running() { return master && master->running(); }
  const std::optional<exit_status>& exit() const {
    static const std::optional<exit_status> none;
    return master ? master->exit() : none;
  }

  // The clean-up of last resort (constructor failure, destructor after a failed stop):
  // kill everything, reap the master, never throw.
  void kill_everything() noexcept {
    stopped = true;
    if (master) master->kill(options.stop_timeout);
  }

  exit_status stop(stop_mode mode) {
    if (stopped) return exit().value_or(exit_status{});
    stopped = true;
    // Idle connections would only make a graceful stop wait for their keep-alive timeout.
    if (session) session->close();
    control.close();
    try {
      return master->stop(mode == stop_mode::graceful ? SIGTERM : SIGINT, options.stop_timeout);
    } catch (const std::runtime_error& e) {
      throw std::runtime_error(std::string("prefork::testing::server: ") + e.what());
    }
  }

  // A request that only reads, and so may be sent twice.
  static bool read_only(const json::object& request) {
    const json::value* cmd = request.if_contains("cmd");
    if (cmd == nullptr || !cmd->is_string()) return false;
    const std::string_view name = cmd->get_string();
    return name == "status" || name == "workers" || name == "stats" || name == "ping";
  }

  boost::system::result<json::value, control_client_error> try_control(const json::object& request,
                                                                       std::chrono::milliseconds timeout) {
    const auto deadline = steady::now() + timeout;
    const bool reused = control.is_open();
    if (!reused) {
      auto connected = control.connect(control_path, timeout);
      if (!connected) return connected.error();
    }
    auto left = [&] {
      return std::max(std::chrono::duration_cast<std::chrono::milliseconds>(deadline - steady::now()), 1ms);
    };
    auto result = control.call(request, left());
    // The master closes an idle control connection (after a minute), and a new master
    // after an upgrade never had it: a reused connection found closed is opened again
    // for a request that may safely be sent twice.
    if (!result && reused && result.error().failure == control_failure::disconnected && read_only(request)) {
      control.close();
      auto connected = control.connect(control_path, left());
      if (!connected) return connected.error();
      result = control.call(request, left());
    }
    return result;
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

  std::string log_tail(std::size_t lines) const { return tail_lines(read_file(directory / "stderr.log"), lines); }

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
                                 exit()->to_string() + ") while waiting for " + std::string(what) +
                                 "; last stderr lines:\n" + log_tail(30));
      }
      if (check(seen)) return;
      if (steady::now() >= deadline) break;
      master->sleep(interval);
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

std::string server::log_text() const { return read_file(impl_->directory / "stderr.log"); }
std::string server::log_tail(std::size_t lines) const { return impl_->log_tail(lines); }
std::string server::stdout_text() const { return read_file(impl_->directory / "stdout.log"); }

std::vector<json::object> server::log_lines() const { return json_lines(log_text()); }

std::vector<json::object> server::find_log(std::string_view msg) const {
  std::vector<json::object> found;
  for (auto& line : log_lines()) {
    const json::value* text = line.if_contains("msg");
    if (text != nullptr && text->is_string() && text->get_string() == msg) found.push_back(std::move(line));
  }
  return found;
}

std::optional<json::object> server::wait_for_log(std::string_view msg, std::chrono::milliseconds timeout,
                                                 const std::function<bool(const json::object&)>& match) const {
  const auto deadline = steady::now() + timeout;
  for (;;) {
    for (auto& line : find_log(msg))
      if (!match || match(line)) return std::move(line);
    if (steady::now() >= deadline) return std::nullopt;
    ::poll(nullptr, 0, 10);
  }
}

void server::wait_ready(std::chrono::milliseconds timeout) { impl_->wait_ready(timeout); }
bool server::running() { return impl_->running(); }

std::optional<exit_status> server::wait_exit(std::chrono::milliseconds timeout) {
  if (!impl_->master) return std::nullopt;
  return impl_->master->wait_exit(timeout);
}

const std::optional<exit_status>& server::master_exit() const noexcept { return impl_->exit(); }

exit_status server::stop(stop_mode mode) { return impl_->stop(mode); }

json::value server::control(json::object request) { return impl_->call(request, impl_->options.request_timeout); }
void server::disconnect() noexcept {
  impl_->control.close();
  if (impl_->session) impl_->session->close();
}

json::object server::status() { return control({{"cmd", "status"}}).as_object(); }
json::array server::workers() { return control({{"cmd", "workers"}}).as_array(); }
json::object server::stats() { return control({{"cmd", "stats"}}).as_object(); }

http_response server::get(std::string_view target, const http_headers& headers) { return http().get(target, headers); }

http_response server::post(std::string_view target, std::string_view body, std::string_view content_type,
                           const http_headers& headers) {
  return http().post(target, body, content_type, headers);
}

http_response server::post_json(std::string_view target, const json::value& body, const http_headers& headers) {
  return http().post_json(target, body, headers);
}

http_response server::request(const http_request& request) { return http().request(request); }

http_session& server::http() {
  if (!impl_->session) impl_->session.emplace(session());
  return *impl_->session;
}

http_session server::session() const { return http_session(impl_->listener_address(), impl_->options.request_timeout); }

socket_type server::connect(const asio::any_io_executor& executor) const {
  return testing::connect(impl_->listener_address(), executor, impl_->options.request_timeout);
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
  if (!impl_->master || !impl_->master->signal(signal_number))
    throw std::runtime_error("cannot signal the master " + std::to_string(impl_->pid) + ": it has exited");
}

}  // namespace prefork::testing
