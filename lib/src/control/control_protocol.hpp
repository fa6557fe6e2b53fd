// The control socket's wire protocol (SPEC section 3), with no I/O: splitting received bytes
// into request lines (64 KiB each at most), parsing one line into a validated command or an
// error reply, and serializing replies. Everything here is pure, so it can be fuzzed.
#pragma once

#include "control/control_target.hpp"

#include <boost/json/fwd.hpp>
#include <boost/system/result.hpp>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace prefork::detail {

/// The longest request line, newline excluded: a longer one is answered with `too_large`.
inline constexpr std::size_t max_control_line = 64 * 1024;

/// The most workers `scale` accepts (the same limit as the config's `workers`).
inline constexpr std::uint64_t max_scale_workers = 1024;

enum class control_command {
  ping,
  status,
  workers,
  stats,
  scale,
  reload,
  stop,
  kill_worker,
  pause_worker,
  resume_worker,
  reopen_logs,
  config,
};

/// The wire name of a command (`"kill_worker"`, ...).
std::string_view to_string(control_command command) noexcept;

/// A validated request. Only the fields of its command are meaningful; the others keep
/// their defaults.
struct control_request {
  control_command command = control_command::ping;
  std::uint64_t workers = 0;               // scale: 1..max_scale_workers
  bool wait = false;                       // reload
  stop_kind stop = stop_kind::graceful;    // stop: `graceful` (default true)
  std::int64_t worker_id = 0;              // kill_worker, pause_worker, resume_worker
  kill_signal signal = kill_signal::term;  // kill_worker: "TERM" (default) or "KILL"
};

/// Parses one request line (without its newline; a trailing '\r' is tolerated).
/// Errors (as the reply to send):
/// - bad_json: the line is not one JSON value (an empty line included);
/// - bad_request: not an object, no `cmd`, `cmd` not a string, or an argument of the wrong
///   type or out of range (`workers must be an integer ≥ 1`, `id must be an integer`,
///   `signal must be "TERM" or "KILL"`, `wait must be a boolean`, `graceful must be a boolean`);
/// - unknown_command: `cmd` names no command.
/// Keys a command does not know are ignored (clients may send more than this version reads).
result<control_request> parse_control_request(std::string_view line);

/// `{"ok":true,"result":<result>}` and a newline.
std::string serialize_ok_reply(const boost::json::value& result);

/// `{"ok":false,"error":{"code":...,"message":...}}` and a newline.
std::string serialize_error_reply(const failure& error);

/// Splits a byte stream into request lines of at most `max_line` bytes (newline excluded).
/// A longer line is reported once as `too_large`, and its bytes are discarded up to and
/// including the next newline, so the stream goes on with the following line. Memory stays
/// below about max_line plus one read. Not thread-safe.
class control_line_reader {
 public:
  explicit control_line_reader(std::size_t max_line = max_control_line);

  enum class event_kind { line, too_large };
  struct event {
    event_kind kind;
    std::string_view line;  // for `line`: valid until the next prepare()
  };

  /// Writable space of `size` bytes for the next read; commit() how many were written.
  /// Invalidates the views returned by next().
  std::span<char> prepare(std::size_t size);
  void commit(std::size_t written) noexcept;

  /// The next complete line or too_large event, or nullopt when more bytes are needed.
  /// Call it until nullopt before the next prepare().
  std::optional<event> next();

  /// Bytes received and not yet returned as (part of) an event.
  std::size_t buffered() const noexcept { return end_ - begin_; }

 private:
  std::size_t max_line_;
  std::vector<char> buffer_;
  std::size_t begin_ = 0;    // first byte not yet consumed
  std::size_t end_ = 0;      // one past the last received byte
  std::size_t scanned_ = 0;  // bytes in [begin_, scanned_) hold no newline
  bool discarding_ = false;  // inside a too long line, dropping bytes up to a newline
};

}  // namespace prefork::detail
