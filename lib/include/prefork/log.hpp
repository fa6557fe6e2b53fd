// Logging for the master and its workers: one line per event, text or JSON, to stderr or a
// file opened for append. Our own, not Boost.Log: a program's Boost.Log is left alone
// (lib/src/core/log.cpp says why).
#pragma once

#include "prefork/config.hpp"

#include <boost/system/error_code.hpp>

#include <concepts>
#include <cstdint>
#include <initializer_list>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <variant>

namespace prefork {

/// Who writes a line: the master, or a worker (whose id is then on every line).
enum class log_role { master, worker };

/// One event field: a key and a value. A view: it refers to the key and to a string value
/// without owning them, so build fields only as arguments of a log call (a temporary
/// std::string lives until the call returns). In JSON lines numbers stay numbers; a key that
/// names a line key (`ts`, `level`, `role`, `pid`, `worker` in a worker's lines, `msg`) is
/// written as `event.<key>` so that no object has a duplicate key.
struct log_field {
  using value_type = std::variant<std::string_view, std::int64_t, std::uint64_t, double, bool>;

  std::string_view key;
  value_type value;

  log_field(std::string_view k, std::string_view v) noexcept : key(k), value(v) {}
  log_field(std::string_view k, const char* v) noexcept : key(k), value(std::string_view(v)) {}
  log_field(std::string_view k, const std::string& v) noexcept : key(k), value(std::string_view(v)) {}
  log_field(std::string_view k, bool v) noexcept : key(k), value(v) {}
  log_field(std::string_view k, char v) = delete;  // would silently become a bool
  template <typename T>
  requires std::signed_integral<T> &&(!std::same_as<T, char>)log_field(std::string_view k, T v) noexcept
      : key(k), value(static_cast<std::int64_t>(v)) {}
  template <typename T>
  requires std::unsigned_integral<T> &&
      (!std::same_as<T, bool>)&&(!std::same_as<T, char>)log_field(std::string_view k, T v) noexcept
      : key(k), value(static_cast<std::uint64_t>(v)) {}
  template <typename T>
  requires std::floating_point<T> log_field(std::string_view k, T v)
  noexcept : key(k), value(static_cast<double>(v)) {}
};

/// Line layouts (one line per call, control characters escaped):
///   text: `2026-11-26T16:02:23.123Z info    worker.3[1235] message key=value key2="two words"`
///         (`master[1234]` for the master; string values quoted and escaped when needed)
///   json: `{"ts":"2026-11-26T16:02:23.123Z","level":"info","role":"worker","pid":1235,
///          "worker":3,"msg":"message","key":"value"}` (no `worker` key in the master's lines;
///          invalid UTF-8 becomes U+FFFD, a non-finite double null)
/// Sets the level filter, the format and the destination (`-` is stderr, else a file path
/// opened for append and created if missing, mode 0644 before umask). Replaces any previous
/// configuration; until the first call, lines go to stderr at `info` in text format.
/// Errors: the file cannot be opened (the errno as a system error_code); the previous
/// configuration then stays in effect.
boost::system::error_code init_logging(const log_config& cfg);

/// Sets the role and worker id written on every later line, and re-reads the pid. A forked
/// worker calls it first thing in the child: `set_log_identity(log_role::worker, id)`.
/// The worker id is ignored for the master.
void set_log_identity(log_role role, int worker_id = -1) noexcept;

/// Re-opens the log file by its path (logrotate's USR1): if the file was moved away, a new
/// one is created and receives the later lines. With stderr it does nothing. Only this
/// process's descriptor is replaced: workers that log to the file must call it too.
/// Errors: the file cannot be opened (errno); the old descriptor then stays in use.
boost::system::error_code reopen_logs();

/// The descriptor lines are written to now (stderr, or the open log file). An exec'd worker
/// gets it as its stderr.
int log_descriptor() noexcept;

/// Whether a line at this level would be written. Check it before building anything costly.
bool log_enabled(log_level level) noexcept;

/// Writes one line (one write(2)) if the level passes the filter. Never throws: a line that
/// cannot be rendered or written is dropped, as there is nowhere left to report it.
void log(log_level level, std::string_view message, std::span<const log_field> fields) noexcept;
/// The same with the fields written in place: log(level, "msg", {{"key", value}, ...}).
inline void log(log_level level, std::string_view message, std::initializer_list<log_field> fields = {}) noexcept {
  log(level, message, std::span<const log_field>(fields.begin(), fields.size()));
}

inline void log_trace(std::string_view message, std::initializer_list<log_field> fields = {}) noexcept {
  log(log_level::trace, message, fields);
}
inline void log_debug(std::string_view message, std::initializer_list<log_field> fields = {}) noexcept {
  log(log_level::debug, message, fields);
}
inline void log_info(std::string_view message, std::initializer_list<log_field> fields = {}) noexcept {
  log(log_level::info, message, fields);
}
inline void log_warning(std::string_view message, std::initializer_list<log_field> fields = {}) noexcept {
  log(log_level::warning, message, fields);
}
inline void log_error(std::string_view message, std::initializer_list<log_field> fields = {}) noexcept {
  log(log_level::error, message, fields);
}
inline void log_fatal(std::string_view message, std::initializer_list<log_field> fields = {}) noexcept {
  log(log_level::fatal, message, fields);
}

}  // namespace prefork
