// The effective configuration of preforkd: every key of SPEC section 2 with its default,
// parsed and validated from JSON (naming the bad key), and printed back as JSON.
#pragma once

#include "prefork/bind_address.hpp"
#include "prefork/error.hpp"

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>
#include <boost/system/result.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <limits>
#include <optional>
#include <stdexcept>
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
  /// The apps' own sections as the file gave them (top-level key -> value), each checked
  /// by its app's check_config (app.hpp); a section the file does not have is absent.
  boost::json::object app_sections;

  /// The section under `key` (an app's config_key), or null when there is none.
  const boost::json::value& app_section(std::string_view key) const noexcept;
};

/// The defaults of SPEC section 2 with `workers` resolved for this machine.
config default_config();

/// What an app's check_config throws for a bad value in its own section. `key` is the path
/// inside the section ("max_keys", "limits.size"; empty: the section itself), `why` what is
/// wrong ("expected an integer >= 1, got \"x\""). The configuration error then names the
/// file and the whole path: `"kv.json": "kv.max_keys": expected an integer >= 1, got "x"`.
class config_value_error : public std::runtime_error {
 public:
  enum class kind { bad_value, unknown_key };
  config_value_error(std::string key, std::string why, kind problem = kind::bad_value);
  const std::string& key() const noexcept { return key_; }
  const std::string& why() const noexcept { return why_; }
  kind problem() const noexcept { return problem_; }

 private:
  std::string key_;
  std::string why_;
  kind problem_;
};

/// Reads an app's own section with the rules and the wording of preforkd's keys: each
/// call checks one key and throws config_value_error naming it. The section is an object,
/// or null (no section: every key absent). Call it from check_config to validate the
/// section, and again from on_worker_start (worker_context::settings().app_section(key))
/// to read the values, which then cannot fail. Keeps a reference to `section`.
class section_reader {
 public:
  /// Throws config_value_error (key "") unless `section` is an object or null.
  explicit section_reader(const boost::json::value& section, std::string prefix = {});

  /// An integer in [min, max] (4.0 counts as 4) into `out`; `out` is untouched when the
  /// key is absent.
  void integer(std::string_view key, std::int64_t min, std::int64_t& out,
               std::int64_t max = std::numeric_limits<std::int64_t>::max());
  /// Whether a duration may be 0.
  enum class zero { rejected, allowed };
  /// A number of seconds (fractions allowed, millisecond resolution), > 0 (>= 0 with
  /// zero::allowed), at most 1e9.
  void seconds(std::string_view key, std::chrono::milliseconds& out, zero zero_rule = zero::rejected);
  /// A non-empty string.
  void text(std::string_view key, std::string& out);
  void boolean(std::string_view key, bool& out);
  /// A nested object (absent or null reads as empty); its errors name `key.inner`.
  section_reader object(std::string_view key);
  /// Any value, unchecked (nullptr when absent); the key counts as known.
  const boost::json::value* find(std::string_view key);
  /// Throws config_value_error (kind::unknown_key) for the first key no call above asked
  /// for: call it last, so that a typo is an error and not a silent default.
  void reject_unknown_keys() const;

  /// Throws config_value_error for `key`: `why` as given, or "expected WHAT, got VALUE".
  [[noreturn]] void fail(std::string_view key, std::string why) const;
  [[noreturn]] void expected(std::string_view key, std::string_view what, const boost::json::value& got) const;

 private:
  const boost::json::object* object_;
  std::string prefix_;  // "limits." inside "limits"
  std::vector<std::string> known_;
};

/// How a value appears after "got" in a configuration error: JSON for scalars (a long
/// string cut), "an object", "an array", "an empty array".
std::string describe_config_value(const boost::json::value& value);

/// An app's own top-level section: its key and the function that checks its value (null
/// when the file has no such key). `check` throws config_value_error, or any
/// std::exception whose what() then describes the whole section; empty: any value passes.
struct app_section_rule {
  std::string key;
  std::function<void(const boost::json::value&)> check;
};

/// What a program adds to the file's rules: the values before the file's, the apps it
/// registered and their sections.
struct config_rules {
  /// The values before the file's (the command line comes after both).
  config defaults = default_config();
  /// The names `app` may take; empty: any non-empty string.
  std::vector<std::string> apps;
  /// Top-level keys that are apps' own sections, kept in config::app_sections.
  std::vector<app_section_rule> sections;
  /// What an unknown top-level key is. `keep_as_section` is for readers of a program's
  /// file that do not know its apps (preforkctl -c FILE reads only `control`): keys whose
  /// value is an object are kept unchecked, as a section of an app they cannot see.
  enum class unknown_keys { reject, keep_as_section };
  unknown_keys unknown = unknown_keys::reject;
};

/// Parses a JSON document (an object; every key optional) over the defaults.
/// An unknown key, a wrong type or an impossible value is an error that names the key:
/// `"workers": expected an integer >= 1 or "auto", got "lots"`.
prefork::result<config> parse_config(std::string_view json_text);

/// parse_config over `rules.defaults`: `app` must name one of `rules.apps`, a top-level key
/// of `rules.sections` is kept in app_sections, and every section rule's check runs (with
/// null when its key is absent), its error naming the whole key path (`"kv.max_keys"`).
prefork::result<config> parse_config(std::string_view json_text, const config_rules& rules);

/// Reads and parses a file; a missing or unreadable file is an error naming the path.
prefork::result<config> load_config_file(const std::filesystem::path& file);
/// The same with a program's rules (parse_config(text, rules)).
prefork::result<config> load_config_file(const std::filesystem::path& file, const config_rules& rules);

/// The effective configuration as JSON, in the file's syntax (`workers` as a number,
/// `socket_mode` as the string given, durations in seconds, apps' sections as given).
boost::json::value to_json(const config& cfg);

/// 2 x CPUs + 1.
int auto_worker_count();

}  // namespace prefork
