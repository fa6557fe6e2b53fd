// prefork::testing::server's public methods (start, stop, control commands, logs, HTTP
// through its session), over server::impl; and the harness's small public helpers.
#include "prefork/testing.hpp"

#include "prefork/control_client.hpp"
#include "testing/server_impl.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <poll.h>
#include <signal.h>

#include <cerrno>
#include <cstdlib>
#include <iostream>
#include <system_error>

namespace prefork::testing {

namespace asio = boost::asio;
namespace json = boost::json;
namespace fs = std::filesystem;
using steady = std::chrono::steady_clock;
using detail::number_or;

namespace {

[[noreturn]] void throw_errno(const std::string& what) {
  throw std::system_error(errno, std::generic_category(), what);
}

}  // namespace

// --- small public helpers -------------------------------------------------------------------

control_error::control_error(failure error) : std::runtime_error(std::move(error.message)), code_(error.code) {}

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

json::object default_server_config() {
  return {{"bind", json::array{"unix:app.sock"}},
          {"control", "ctl.sock"},
          {"workers", 2},
          {"graceful_timeout", 5},
          {"log", json::object{{"level", "info"}, {"format", "json"}}}};
}

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
  if (killed <= 0) throw control_error({errc::bad_reply, "kill_worker: no pid in " + json::serialize(result)});
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
  if (generation < 0) throw control_error({errc::bad_reply, "reload: no generation in " + json::serialize(result)});
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
