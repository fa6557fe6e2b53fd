#include "prefork/preforkctl.hpp"

#include "prefork/config.hpp"
#include "prefork/control_client.hpp"

#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace prefork {

namespace json = boost::json;
using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

namespace {

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

// --- the commands ----------------------------------------------------------------------

enum class argument { none, count, worker_id };

struct command_spec {
  std::string_view name;       // on the command line
  std::string_view wire_name;  // `cmd` on the socket; empty for wait-ready
  argument positional;
  std::string_view synopsis;
  std::string_view summary;
  std::string_view details;  // extra lines of the command's help
};

constexpr std::array<command_spec, 14> commands{{
    {"ping", "ping", argument::none, "ping", "check that the master answers (prints pong)", ""},
    {"status", "status", argument::none, "status", "the master's state, generation, workers and listeners", ""},
    {"workers", "workers", argument::none, "workers", "a table of the workers", ""},
    {"stats", "stats", argument::none, "stats", "counters since the master started", ""},
    {"scale", "scale", argument::count, "scale N", "set the desired number of workers (N >= 1)", ""},
    {"reload", "reload", argument::none, "reload [--wait]", "start a new generation of workers",
     "  --wait               answer once the new generation serves and the old one is gone\n"},
    {"stop", "stop", argument::none, "stop [--fast]", "stop the master (gracefully)",
     "  --fast               workers get TERM at once instead of finishing their connections\n"},
    {"kill-worker", "kill_worker", argument::worker_id, "kill-worker ID [--signal KILL|TERM]",
     "signal worker ID (TERM: recycle it)", "  --signal KILL|TERM   the signal to send (default TERM)\n"},
    {"pause-worker", "pause_worker", argument::worker_id, "pause-worker ID",
     "worker ID keeps its connections but gets no new ones", ""},
    {"resume-worker", "resume_worker", argument::worker_id, "resume-worker ID", "undo pause-worker", ""},
    {"reopen-logs", "reopen_logs", argument::none, "reopen-logs", "reopen the log files (after logrotate)", ""},
    {"config", "config", argument::none, "config", "the master's effective configuration", ""},
    {"wait-ready", "", argument::none, "wait-ready [--timeout SECONDS]", "wait until every desired worker is ready",
     "  --timeout SECONDS    give up after this long (default 30) and exit 1\n"},
    {"help", "", argument::none, "help [COMMAND]", "print this help, or a command's", ""},
}};

const command_spec* find_command(std::string_view name) {
  std::string normalized(name);
  std::replace(normalized.begin(), normalized.end(), '_', '-');  // kill_worker works too
  for (const auto& spec : commands)
    if (spec.name == normalized) return &spec;
  return nullptr;
}

std::string global_help() {
  std::string text =
      "Usage: preforkctl [-s SOCKET | -c FILE] [--json] COMMAND [ARGS]\n"
      "\n"
      "Talks to a running preforkd through its control socket.\n"
      "\n"
      "Options:\n"
      "  -s, --socket SOCKET  the control socket\n"
      "  -c, --config FILE    take the socket from preforkd's configuration file (key \"control\")\n"
      "      --json           print the result as JSON on one line\n"
      "  -h, --help           print this help; COMMAND --help prints the command's\n"
      "\n"
      "Commands:\n";
  for (const auto& spec : commands) {
    std::string line = "  " + std::string(spec.synopsis);
    constexpr std::size_t column = 40;
    if (line.size() < column)
      line.resize(column, ' ');
    else
      line += "\n" + std::string(column, ' ');
    text += line + std::string(spec.summary) + "\n";
  }
  text +=
      "\n"
      "The socket is SOCKET, else the \"control\" path of FILE, else $PREFORK_CONTROL, else\n"
      "run/preforkd.ctl; relative paths are relative to the working directory.\n"
      "\n"
      "Exit status: 0 done; 1 the master answered with an error (or wait-ready timed out);\n"
      "2 usage error; 3 cannot reach the master (not running, no permission).\n";
  return text;
}

std::string command_help(const command_spec& spec) {
  std::string text = "Usage: preforkctl [-s SOCKET | -c FILE] [--json] " + std::string(spec.synopsis) + "\n\n";
  std::string summary(spec.summary);
  if (!summary.empty()) summary[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(summary[0])));
  text += summary + ".\n";
  if (!spec.details.empty()) text += "\nOptions:\n" + std::string(spec.details);
  return text;
}

// --- the command line ------------------------------------------------------------------

struct invocation {
  std::optional<std::string> socket;
  std::optional<std::string> config_file;
  bool json_output = false;
  bool help = false;
  const command_spec* command = nullptr;
  std::vector<std::string> positionals;
  bool wait = false;
  bool fast = false;
  std::optional<std::string> signal;
  std::optional<std::string> timeout;
};

struct usage_error {
  std::string message;
};

std::optional<std::int64_t> parse_integer(std::string_view text) {
  std::int64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || text.empty()) return std::nullopt;
  return value;
}

std::optional<double> parse_seconds(const std::string& text) {
  if (text.empty()) return std::nullopt;
  char* end = nullptr;
  double value = std::strtod(text.c_str(), &end);
  if (end != text.c_str() + text.size() || !std::isfinite(value) || value < 0 || value > 1e6) return std::nullopt;
  return value;
}

// Reads the value of an option given as `--name VALUE`, `--name=VALUE` or `-xVALUE`.
// `index` is moved past what was consumed.
std::optional<std::string> option_value(std::string_view arg, std::string_view long_name, std::string_view short_name,
                                        int argc, const char* const* argv, int& index, bool& matched,
                                        std::optional<usage_error>& error) {
  matched = false;
  std::optional<std::string> value;
  if (arg == long_name || (!short_name.empty() && arg == short_name)) {
    matched = true;
    if (index + 1 >= argc) {
      error = usage_error{std::string(arg) + ": missing value"};
      return std::nullopt;
    }
    value = argv[++index];
  } else if (arg.starts_with(std::string(long_name) + "=")) {
    matched = true;
    value = std::string(arg.substr(long_name.size() + 1));
  } else if (!short_name.empty() && arg.starts_with(short_name) && arg.size() > short_name.size()) {
    matched = true;
    value = std::string(arg.substr(short_name.size()));
  }
  return value;
}

boost::system::result<invocation, usage_error> parse_arguments(int argc, const char* const* argv) {
  invocation parsed;
  std::optional<usage_error> error;
  auto set_once = [&](std::optional<std::string>& slot, std::string_view name, std::string value) {
    if (slot && !error) error = usage_error{std::string(name) + " given twice"};
    slot = std::move(value);
  };
  auto flag_once = [&](bool& slot, std::string_view name) {
    if (slot && !error) error = usage_error{std::string(name) + " given twice"};
    slot = true;
  };
  bool only_positionals = false;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i] ? argv[i] : "";
    if (only_positionals || arg.size() < 2 || arg[0] != '-') {
      if (parsed.command == nullptr && parsed.positionals.empty()) {
        parsed.command = find_command(arg);
        if (parsed.command == nullptr && !error) error = usage_error{"unknown command \"" + std::string(arg) + "\""};
        if (parsed.command == nullptr) parsed.positionals.push_back(std::string(arg));  // remember one was given
      } else {
        parsed.positionals.push_back(std::string(arg));
      }
      continue;
    }
    if (arg == "--") {
      only_positionals = true;
      continue;
    }
    bool matched = false;
    if (auto value = option_value(arg, "--socket", "-s", argc, argv, i, matched, error); matched) {
      if (value) set_once(parsed.socket, "--socket", *value);
      continue;
    }
    if (auto value = option_value(arg, "--config", "-c", argc, argv, i, matched, error); matched) {
      if (value) set_once(parsed.config_file, "--config", *value);
      continue;
    }
    if (auto value = option_value(arg, "--signal", "", argc, argv, i, matched, error); matched) {
      if (value) set_once(parsed.signal, "--signal", *value);
      continue;
    }
    if (auto value = option_value(arg, "--timeout", "", argc, argv, i, matched, error); matched) {
      if (value) set_once(parsed.timeout, "--timeout", *value);
      continue;
    }
    if (arg == "--json") {
      flag_once(parsed.json_output, "--json");
    } else if (arg == "-h" || arg == "--help") {
      parsed.help = true;
    } else if (arg == "--wait") {
      flag_once(parsed.wait, "--wait");
    } else if (arg == "--fast") {
      flag_once(parsed.fast, "--fast");
    } else if (!error) {
      error = usage_error{"unknown option " + std::string(arg)};
    }
  }
  if (parsed.help) return parsed;  // help wins over every other complaint
  if (error) return *error;
  if (parsed.command == nullptr) return usage_error{"no command given"};
  if (parsed.socket && parsed.config_file) return usage_error{"-s and -c cannot be used together"};

  const command_spec& spec = *parsed.command;
  auto only_for = [&](bool given, std::string_view option, std::string_view command) -> std::optional<usage_error> {
    if (given && spec.name != command)
      return usage_error{std::string(option) + " is not an option of " + std::string(spec.name)};
    return std::nullopt;
  };
  if (auto e = only_for(parsed.wait, "--wait", "reload")) return *e;
  if (auto e = only_for(parsed.fast, "--fast", "stop")) return *e;
  if (auto e = only_for(parsed.signal.has_value(), "--signal", "kill-worker")) return *e;
  if (auto e = only_for(parsed.timeout.has_value(), "--timeout", "wait-ready")) return *e;

  if (spec.name == "help") {
    if (parsed.positionals.size() > 1) return usage_error{"help: too many arguments"};
    if (parsed.positionals.size() == 1) {
      parsed.command = find_command(parsed.positionals[0]);
      if (parsed.command == nullptr) return usage_error{"unknown command \"" + parsed.positionals[0] + "\""};
    } else {
      parsed.command = nullptr;
    }
    parsed.help = true;
    return parsed;
  }
  const std::size_t expected = spec.positional == argument::none ? 0 : 1;
  if (parsed.positionals.size() < expected)
    return usage_error{std::string(spec.name) + ": missing " + (spec.positional == argument::count ? "N" : "ID")};
  if (parsed.positionals.size() > expected)
    return usage_error{std::string(spec.name) + ": unexpected argument \"" + parsed.positionals[expected] + "\""};
  if (spec.positional == argument::count) {
    auto count = parse_integer(parsed.positionals[0]);
    if (!count || *count < 1)
      return usage_error{"scale: N must be an integer >= 1, got \"" + parsed.positionals[0] + "\""};
  }
  if (spec.positional == argument::worker_id && !parse_integer(parsed.positionals[0]))
    return usage_error{std::string(spec.name) + ": ID must be an integer, got \"" + parsed.positionals[0] + "\""};
  if (parsed.signal) {
    std::string name = *parsed.signal;
    std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return std::toupper(c); });
    if (name.starts_with("SIG")) name.erase(0, 3);
    if (name != "TERM" && name != "KILL")
      return usage_error{"--signal must be KILL or TERM, got \"" + *parsed.signal + "\""};
    parsed.signal = name;
  }
  if (parsed.timeout && !parse_seconds(*parsed.timeout))
    return usage_error{"--timeout must be a number of seconds >= 0, got \"" + *parsed.timeout + "\""};
  return parsed;
}

// --- human output ----------------------------------------------------------------------

// A scalar as people read it: strings without quotes, null as "-".
std::string text_of(const json::value& value) {
  if (value.is_string()) return std::string(value.get_string());
  if (value.is_null()) return "-";
  return json::serialize(value);
}

std::string text_of(const json::object& object, std::string_view key) {
  const json::value* value = object.if_contains(key);
  return value ? text_of(*value) : "-";
}

std::optional<double> number_of(const json::object& object, std::string_view key) {
  const json::value* value = object.if_contains(key);
  if (value == nullptr) return std::nullopt;
  if (value->is_int64()) return static_cast<double>(value->get_int64());
  if (value->is_uint64()) return static_cast<double>(value->get_uint64());
  if (value->is_double()) return value->get_double();
  return std::nullopt;
}

std::string printf_text(const char* format, double value) {
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, format, value);
  return buffer;
}

std::string duration_text(const json::object& object, std::string_view key_ms) {
  auto ms = number_of(object, key_ms);
  if (!ms) return text_of(object, key_ms);
  if (*ms < 1000) return printf_text("%.0fms", *ms);
  return printf_text("%.1fs", *ms / 1000);
}

std::string bytes_text(const json::object& object, std::string_view key) {
  auto bytes = number_of(object, key);
  if (!bytes) return text_of(object, key);
  constexpr std::array<const char*, 4> units{"K", "M", "G", "T"};
  if (*bytes < 1024) return printf_text("%.0fB", *bytes);
  double value = *bytes / 1024;
  std::size_t unit = 0;
  while (value >= 1024 && unit + 1 < units.size()) {
    value /= 1024;
    ++unit;
  }
  return printf_text(value < 10 ? "%.1f" : "%.0f", value) + units[unit];
}

void print_pretty(std::ostream& out, const json::value& value, int indent) {
  const std::string pad(static_cast<std::size_t>(indent) * 2, ' ');
  if (const json::object* object = value.if_object()) {
    if (object->empty()) {
      out << "{}";
      return;
    }
    out << "{\n";
    bool first = true;
    for (const auto& member : *object) {
      if (!first) out << ",\n";
      first = false;
      out << pad << "  " << json::serialize(member.key()) << ": ";
      print_pretty(out, member.value(), indent + 1);
    }
    out << "\n" << pad << "}";
  } else if (const json::array* array = value.if_array()) {
    if (array->empty()) {
      out << "[]";
      return;
    }
    out << "[\n";
    bool first = true;
    for (const auto& element : *array) {
      if (!first) out << ",\n";
      first = false;
      out << pad << "  ";
      print_pretty(out, element, indent + 1);
    }
    out << "\n" << pad << "]";
  } else {
    out << json::serialize(value);
  }
}

void print_status(std::ostream& out, const json::value& result) {
  const json::object* status = result.if_object();
  if (status == nullptr) {
    out << json::serialize(result) << "\n";
    return;
  }
  constexpr int width = 12;
  auto row = [&](std::string_view label, const std::string& value) {
    std::string key = std::string(label) + ":";
    key.resize(width, ' ');
    out << key << value << "\n";
  };
  const std::array<std::string_view, 8> shown{"state",      "pid",     "version",  "uptime_s",
                                              "generation", "workers", "dispatch", "listeners"};
  if (status->contains("state")) row("state", text_of(*status, "state"));
  if (status->contains("pid")) row("pid", text_of(*status, "pid"));
  if (status->contains("version")) row("version", text_of(*status, "version"));
  if (auto uptime = number_of(*status, "uptime_s")) row("uptime", printf_text("%.1f s", *uptime));
  if (status->contains("generation")) row("generation", text_of(*status, "generation"));
  if (const json::value* workers = status->if_contains("workers")) {
    if (const json::object* counts = workers->if_object()) {
      std::string text;
      for (std::string_view key : {"desired", "ready", "starting", "draining"}) {
        if (!text.empty()) text += ", ";
        text += text_of(*counts, key) + " " + std::string(key);
      }
      row("workers", text);
    } else {
      row("workers", text_of(*workers));
    }
  }
  if (status->contains("dispatch")) row("dispatch", text_of(*status, "dispatch"));
  if (const json::value* listeners = status->if_contains("listeners")) {
    const json::array* list = listeners->if_array();
    if (list == nullptr || list->empty()) row("listeners", list ? "none" : text_of(*listeners));
    bool first = true;
    static const json::array no_listeners;
    for (const auto& entry : list ? *list : no_listeners) {
      std::string text;
      if (const json::object* listener = entry.if_object())
        text = text_of(*listener, "bind") + " (" + text_of(*listener, "address") + ")";
      else
        text = text_of(entry);
      if (first)
        row("listeners", text);
      else
        out << std::string(width, ' ') << text << "\n";
      first = false;
    }
  }
  for (const auto& member : *status) {  // whatever a newer master adds
    const std::string_view key(member.key().data(), member.key().size());
    if (std::find(shown.begin(), shown.end(), key) != shown.end()) continue;
    row(key, text_of(member.value()));
  }
}

void print_workers(std::ostream& out, const json::value& result) {
  const json::array* workers = result.if_array();
  if (workers == nullptr) {
    out << json::serialize(result) << "\n";
    return;
  }
  std::vector<std::array<std::string, 9>> rows;
  rows.push_back({"ID", "PID", "GEN", "STATE", "ACTIVE", "SERVED", "STARTED", "HEARTBEAT", "RSS"});
  for (const auto& entry : *workers) {
    const json::object* worker = entry.if_object();
    if (worker == nullptr) continue;
    rows.push_back({text_of(*worker, "id"), text_of(*worker, "pid"), text_of(*worker, "generation"),
                    text_of(*worker, "state"), text_of(*worker, "active"), text_of(*worker, "served"),
                    text_of(*worker, "started_at"), duration_text(*worker, "last_heartbeat_ms"),
                    bytes_text(*worker, "rss_bytes")});
  }
  std::array<std::size_t, 9> widths{};
  for (const auto& row : rows)
    for (std::size_t c = 0; c < row.size(); ++c) widths[c] = std::max(widths[c], row[c].size());
  for (const auto& row : rows) {
    std::string line;
    for (std::size_t c = 0; c < row.size(); ++c) {
      line += row[c];
      if (c + 1 < row.size()) line.append(widths[c] - row[c].size() + 2, ' ');
    }
    out << line << "\n";
  }
}

void print_stats(std::ostream& out, const json::value& result) {
  const json::object* stats = result.if_object();
  if (stats == nullptr) {
    out << json::serialize(result) << "\n";
    return;
  }
  for (const auto& member : *stats)
    out << std::string_view(member.key().data(), member.key().size()) << ": " << text_of(member.value()) << "\n";
}

void print_human(std::ostream& out, const invocation& call, const json::value& result) {
  const std::string_view name = call.command->name;
  const json::object* object = result.if_object();
  auto field = [&](std::string_view key) { return object ? text_of(*object, key) : std::string("-"); };
  if (name == "ping") {
    out << text_of(result) << "\n";
  } else if (name == "status") {
    print_status(out, result);
  } else if (name == "workers") {
    print_workers(out, result);
  } else if (name == "stats") {
    print_stats(out, result);
  } else if (name == "config") {
    print_pretty(out, result, 0);
    out << "\n";
  } else if (name == "scale") {
    out << "desired: " << field("desired") << "\n";
  } else if (name == "reload") {
    out << (call.wait ? "reloaded: generation " : "reload started: generation ") << field("generation") << "\n";
  } else if (name == "stop") {
    out << (call.fast ? "stopping (fast)" : "stopping") << "\n";
  } else if (name == "kill-worker") {
    out << "sent " << call.signal.value_or("TERM") << " to worker " << call.positionals[0] << " (pid " << field("pid")
        << ")\n";
  } else if (name == "pause-worker") {
    out << "worker " << call.positionals[0] << " paused\n";
  } else if (name == "resume-worker") {
    out << "worker " << call.positionals[0] << " resumed\n";
  } else if (name == "reopen-logs") {
    out << "logs reopened\n";
  } else {
    out << json::serialize(result) << "\n";
  }
}

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
int report_failure(std::ostream& err, const control_client_error& error) {
  switch (error.failure) {
    case control_failure::remote:
      err << program << ": " << error.code << ": " << error.message << "\n";
      // `forbidden` is "no permission": the master cannot be reached by this user.
      return error.code == "forbidden" ? exit_unreachable : exit_remote_error;
    case control_failure::unreachable:
      err << program << ": " << error.message << " (is preforkd running?)\n";
      return exit_unreachable;
    case control_failure::timeout:
    case control_failure::disconnected: err << program << ": " << error.message << "\n"; return exit_unreachable;
    case control_failure::bad_reply: err << program << ": " << error.message << "\n"; return exit_remote_error;
  }
  return exit_remote_error;
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
      } else if (status.error().failure == control_failure::remote ||
                 status.error().failure == control_failure::bad_reply) {
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

boost::system::result<std::string, usage_error> socket_path(const invocation& call) {
  // usage_error is constructible from a string too: say which alternative is meant.
  auto found = [](std::string path) {
    return boost::system::result<std::string, usage_error>(boost::system::in_place_value, std::move(path));
  };
  if (call.socket) {
    if (call.socket->empty()) return usage_error{"--socket: empty path"};
    return found(*call.socket);
  }
  if (call.config_file) {
    // The file of any prefork program: sections of its apps (which preforkctl cannot see)
    // are let through; the rest is checked as preforkd checks it.
    config_rules rules;
    rules.unknown = config_rules::unknown_keys::keep_as_section;
    auto cfg = load_config_file(*call.config_file, rules);
    if (!cfg) return usage_error{cfg.error().message};
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
