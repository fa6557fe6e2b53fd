// server::impl: starting the master in a fresh temp directory, stopping it, its control
// calls (a read-only request retried once on a connection the master closed) and the
// polls that wait for readiness or a worker's replacement.
#include "testing/server_impl.hpp"

#include <boost/json/serialize.hpp>

#include <signal.h>

#include <algorithm>
#include <cstdlib>
#include <deque>
#include <sstream>
#include <stdexcept>

namespace prefork::testing {

namespace json = boost::json;
namespace fs = std::filesystem;
using steady = std::chrono::steady_clock;
using namespace std::chrono_literals;
using detail::number_or;

namespace {

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

}  // namespace

std::int64_t detail::number_or(const json::object& object, std::string_view key, std::int64_t fallback) {
  auto found = object.find(key);
  if (found == object.end()) return fallback;
  if (auto n = found->value().if_int64()) return *n;
  if (auto n = found->value().if_uint64()) return static_cast<std::int64_t>(*n);
  return fallback;
}

server::impl::~impl() {
  if (!stopped) kill_everything();
}

void server::impl::launch() {
  if (options.program.empty()) {
    const char* from_environment = std::getenv("PREFORKD");
    if (from_environment == nullptr || *from_environment == '\0')
      throw std::runtime_error("prefork::testing::server: no program given and PREFORKD is not set");
    options.program = from_environment;
  }
  options.program = fs::absolute(options.program);

  directory_owner.emplace();
  directory = directory_owner->path();
  config = default_server_config();
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

void server::impl::set_first_address(std::string address) {
  std::lock_guard lock(address_mutex);
  if (first_address != address) first_address = std::move(address);
}

std::string server::impl::listener_address() const {
  std::lock_guard lock(address_mutex);
  if (first_address.empty()) throw std::runtime_error("the server's listener address is not known yet");
  return first_address;
}

std::optional<fs::path> server::impl::first_unix_bind() const {
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

const std::optional<exit_status>& server::impl::exit() const {
  static const std::optional<exit_status> none;
  return master ? master->exit() : none;
}

void server::impl::kill_everything() noexcept {
  stopped = true;
  if (master) master->kill(options.stop_timeout);
}

exit_status server::impl::stop(stop_mode mode) {
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

bool server::impl::read_only(const json::object& request) {
  const json::value* cmd = request.if_contains("cmd");
  if (cmd == nullptr || !cmd->is_string()) return false;
  const std::string_view name = cmd->get_string();
  return name == "status" || name == "workers" || name == "stats" || name == "ping";
}

result<json::value> server::impl::try_control(const json::object& request, std::chrono::milliseconds timeout) {
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
  if (!result && reused && result.error().code == errc::disconnected && read_only(request)) {
    control.close();
    auto connected = control.connect(control_path, left());
    if (!connected) return connected.error();
    result = control.call(request, left());
  }
  return result;
}

std::string server::impl::log_tail(std::size_t lines) const {
  return tail_lines(read_file(directory / "stderr.log"), lines);
}

json::value server::impl::call(const json::object& request, std::chrono::milliseconds timeout) {
  auto result = try_control(request, timeout);
  if (!result) {
    const auto& error = result.error();
    throw control_error({error.code, json::serialize(request) + ": " + error.message});
  }
  return std::move(*result);
}

void server::impl::wait_until(const std::function<bool(std::string& seen)>& check, std::chrono::milliseconds timeout,
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

std::optional<json::object> server::impl::poll_workers(std::string& seen) {
  auto status = try_control({{"cmd", "status"}}, options.request_timeout);
  if (!status) {
    seen = status.error().message;
    if (is_remote(status.error()) || status.error().code == errc::bad_reply)
      throw control_error({status.error().code, "status: " + status.error().message});
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

void server::impl::wait_ready(std::chrono::milliseconds timeout) {
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

pid_t server::impl::worker_pid(int id) {
  auto list = call({{"cmd", "workers"}}, options.request_timeout);
  for (const auto& entry : list.as_array()) {
    const auto& worker = entry.as_object();
    if (number_or(worker, "id", -1) == id) {
      auto pid_value = number_or(worker, "pid", -1);
      if (pid_value > 0) return static_cast<pid_t>(pid_value);
    }
  }
  throw control_error({errc::not_found, "no live worker with id " + std::to_string(id)});
}

void server::impl::wait_replaced(pid_t old_pid) {
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

}  // namespace prefork::testing
