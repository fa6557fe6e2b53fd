// The effective configuration of preforkd: every key of SPEC section 2 with its default,
// parsed and validated from JSON (naming the bad key), and printed back as JSON.
#pragma once

#include "prefork/bind_address.hpp"
#include "prefork/error.hpp"

#include <boost/json/fwd.hpp>
#include <boost/system/result.hpp>

#include <chrono>
#include <cstddef>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace prefork {

enum class log_level { trace, debug, info, warning, error, fatal };
enum class log_format { text, json };
enum class dispatch_kind { least_connections, round_robin };

struct restart_config {
  std::chrono::milliseconds min_uptime{1000};
  std::chrono::milliseconds backoff_initial{100};
  std::chrono::milliseconds backoff_max{30000};
};

struct log_config {
  log_level level = log_level::info;
  std::string file = "-";  // "-" is stderr
  log_format format = log_format::text;
};

struct http_config {
  std::size_t max_header_bytes = 8192;
  std::size_t max_body_bytes = 1048576;
  std::chrono::milliseconds request_timeout{10000};
};

struct config {
  std::vector<bind_address> bind;  // default: unix:run/preforkd.sock
  bool workers_auto = true;        // "auto" = 2 x CPUs + 1
  int workers = 0;                 // resolved count (>= 1) after parsing
  int worker_connections = 1000;
  int backlog = 1024;
  std::chrono::milliseconds timeout{30000};           // seconds in JSON (number)
  std::chrono::milliseconds graceful_timeout{30000};  // seconds in JSON
  long max_requests = 0;
  long max_requests_jitter = 0;
  std::chrono::milliseconds keepalive{5000};  // seconds in JSON
  dispatch_kind dispatch = dispatch_kind::least_connections;
  restart_config restart;
  std::string control = "run/preforkd.ctl";
  std::string socket_mode = "0660";  // as given
  unsigned socket_mode_bits = 0660;
  std::optional<std::string> pid_file;
  log_config log;
  std::string app = "hello";
  /// Empty: workers serve `app` in the forked process. Else each worker execs this command
  /// (argv; argv[0] looked up in PATH), which speaks the channel protocol (lib/PROTOCOL.md).
  std::vector<std::string> exec;
  http_config http;
  std::optional<bind_address> metrics;
};

/// The defaults of SPEC section 2 with `workers` resolved for this machine.
config default_config();

/// What a program adds to the file's rules: the values before the file's and the apps it
/// registered.
struct config_rules {
  /// The values before the file's (the command line comes after both).
  config defaults = default_config();
  /// The names `app` may take; empty: any non-empty string.
  std::vector<std::string> apps;
};

/// Parses a JSON document (an object; every key optional) over the defaults.
/// An unknown key, a wrong type or an impossible value is an error that names the key:
/// `"workers": expected an integer >= 1 or "auto", got "lots"`.
boost::system::result<config, config_error> parse_config(std::string_view json_text);

/// parse_config over `rules.defaults`; `app` must name one of `rules.apps`.
boost::system::result<config, config_error> parse_config(std::string_view json_text, const config_rules& rules);

/// Reads and parses a file; a missing or unreadable file is an error naming the path.
boost::system::result<config, config_error> load_config_file(const std::filesystem::path& file);
/// The same with a program's rules (parse_config(text, rules)).
boost::system::result<config, config_error> load_config_file(const std::filesystem::path& file,
                                                             const config_rules& rules);

/// The effective configuration as JSON, in the file's syntax (`workers` as a number,
/// `socket_mode` as the string given, durations in seconds).
boost::json::value to_json(const config& cfg);

/// 2 x CPUs + 1.
int auto_worker_count();

}  // namespace prefork
