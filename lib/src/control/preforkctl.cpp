// preforkctl: one call to the master over its control socket (or wait-ready's polling),
// from the parsed command line to the exit status. The command line, the help texts and
// the human output live in preforkctl_arguments.cpp, _commands.cpp and _output.cpp.
#include "prefork/preforkctl.hpp"

#include "control/preforkctl_internal.hpp"
#include "prefork/config.hpp"
#include "prefork/control_client.hpp"

#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <thread>

namespace prefork {

namespace json = boost::json;
using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

namespace {

using namespace detail::preforkctl;

constexpr std::string_view program = "preforkctl";
constexpr std::string_view default_socket = "run/preforkd.ctl";
constexpr std::chrono::milliseconds request_timeout = 10s;
constexpr std::chrono::milliseconds reload_wait_timeout = 300s;
constexpr std::chrono::milliseconds wait_ready_default = 30s;
constexpr std::chrono::milliseconds wait_ready_poll = 50ms;

constexpr int exit_done = 0;
constexpr int exit_remote_error = 1;
constexpr int exit_usage = 2;
constexpr int exit_unreachable = 3;

// --- talking to the master ------------------------------------------------------------

json::object request_for(const invocation& call) {
  json::object request{{"cmd", call.command->wire_name}};
  const std::string_view name = call.command->name;
  if (name == "scale") request["workers"] = *parse_integer(call.positionals[0]);
  if (name == "reload" && call.wait) request["wait"] = true;
  if (name == "stop") request["graceful"] = !call.fast;
  if (call.command->positional == argument::worker_id) request["id"] = *parse_integer(call.positionals[0]);
  if (name == "kill-worker") request["signal"] = call.signal.value_or("TERM");
  return request;
}

// Prints a failed call and returns the exit status for it.
int report_failure(std::ostream& err, const failure& error) {
  if (is_remote(error)) {
    err << program << ": " << control_code_name(error.code) << ": " << error.message << "\n";
    // `forbidden` is "no permission": the master cannot be reached by this user.
    return error.code == errc::forbidden ? exit_unreachable : exit_remote_error;
  }
  if (error.code == errc::unreachable) {
    err << program << ": " << error.message << " (is preforkd running?)\n";
    return exit_unreachable;
  }
  err << program << ": " << error.message << "\n";
  return error.code == errc::timeout || error.code == errc::disconnected ? exit_unreachable : exit_remote_error;
}

std::string seconds_text(std::chrono::milliseconds duration) {
  return printf_text("%g s", static_cast<double>(duration.count()) / 1000);
}

// `status` says every desired worker is ready; `why` gets what is missing.
bool status_ready(const json::value& result, std::string& why) {
  const json::object* status = result.if_object();
  const json::value* workers = status ? status->if_contains("workers") : nullptr;
  const json::object* counts = workers ? workers->if_object() : nullptr;
  if (counts == nullptr) {
    why = "a status with worker counts (got " + json::serialize(result).substr(0, 200) + ")";
    return false;
  }
  auto desired = number_of(*counts, "desired");
  auto ready = number_of(*counts, "ready");
  auto starting = number_of(*counts, "starting").value_or(0);
  if (desired && ready && *ready >= *desired && starting == 0) return true;
  why = "workers to be ready (" + text_of(*counts, "ready") + " of " + text_of(*counts, "desired") + " ready, " +
        text_of(*counts, "starting") + " starting)";
  return false;
}

int wait_ready(const invocation& call, const std::string& socket, std::ostream& out, std::ostream& err) {
  const auto timeout =
      call.timeout ? std::chrono::milliseconds(std::llround(*parse_seconds(*call.timeout) * 1000)) : wait_ready_default;
  const auto deadline = steady::now() + timeout;
  control_client client;
  std::string why = "the control socket " + socket + " to accept connections";
  for (;;) {
    // Each attempt gets what is left, but at least a moment (so --timeout 0 tries once).
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - steady::now());
    auto attempt = std::clamp(left, std::chrono::milliseconds(100), request_timeout);
    bool connected = client.is_open();
    if (!connected) {
      auto result = client.connect(socket, attempt);
      connected = result.has_value();
      if (!connected)
        why = "the control socket " + socket + " to accept connections (last error: " + result.error().message + ")";
    }
    if (connected) {
      auto status = client.call({{"cmd", "status"}}, attempt);
      if (status) {
        if (status_ready(*status, why)) {
          if (call.json_output)
            out << json::serialize(*status) << "\n";
          else
            out << "ready\n";
          return exit_done;
        }
      } else if (is_remote(status.error()) || status.error().code == errc::bad_reply) {
        return report_failure(err, status.error());  // waiting longer will not change the answer
      } else {
        why = "the master to answer status (last error: " + status.error().message + ")";
      }
    }
    if (steady::now() >= deadline) break;
    std::this_thread::sleep_for(std::min<steady::duration>(wait_ready_poll, deadline - steady::now()));
  }
  err << program << ": wait-ready: timed out after " << seconds_text(timeout) << " waiting for " << why << "\n";
  return exit_remote_error;
}

result<std::string> socket_path(const invocation& call) {
  auto found = [](std::string path) { return result<std::string>(boost::system::in_place_value, std::move(path)); };
  if (call.socket) {
    if (call.socket->empty()) return failure{errc::usage, "--socket: empty path"};
    return found(*call.socket);
  }
  if (call.config_file) {
    // The file of any prefork program: sections of its apps (which preforkctl cannot see)
    // are let through; the rest is checked as preforkd checks it.
    config_rules rules;
    rules.unknown = config_rules::unknown_keys::keep_as_section;
    auto cfg = load_config_file(*call.config_file, rules);
    if (!cfg) return failure{errc::usage, cfg.error().message};
    return found(cfg->control);
  }
  if (const char* env = std::getenv("PREFORK_CONTROL"); env != nullptr && *env != '\0') return found(env);
  return found(std::string(default_socket));
}

int usage_failure(std::ostream& err, const std::string& message, const command_spec* command) {
  err << program << ": " << message << "\n";
  err << "Try 'preforkctl " << (command && command->name != "help" ? std::string(command->name) + " " : "")
      << "--help' for more information.\n";
  return exit_usage;
}

}  // namespace

int run_preforkctl(int argc, const char* const* argv, std::ostream& out, std::ostream& err) {
  auto parsed = parse_arguments(argc, argv);
  if (!parsed) return usage_failure(err, parsed.error().message, nullptr);
  const invocation& call = *parsed;
  if (call.help) {
    out << (call.command && call.command->name != "help" ? command_help(*call.command) : global_help());
    return exit_done;
  }
  auto socket = socket_path(call);
  if (!socket) return usage_failure(err, socket.error().message, call.command);
  if (call.command->name == "wait-ready") return wait_ready(call, *socket, out, err);

  const auto timeout = call.command->name == "reload" && call.wait ? reload_wait_timeout : request_timeout;
  auto result = control_call(*socket, request_for(call), timeout);
  if (!result) return report_failure(err, result.error());
  if (call.json_output)
    out << json::serialize(*result) << "\n";
  else
    print_human(out, call, *result);
  return exit_done;
}

}  // namespace prefork
