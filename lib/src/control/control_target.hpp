// What the control socket can ask of the master. The master implements it; the control
// server (control_server.hpp) validates requests, calls these, and writes the replies.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/assert/source_location.hpp>
#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/system/result.hpp>

#include <cstdint>
#include <string>
#include <string_view>

namespace prefork::detail {

/// The error codes a reply carries: SPEC section 3's, in its order, then prefork's own
/// (README "preforkctl"). Every reply names its code through these, never a bare literal.
namespace control_code {
inline constexpr std::string_view bad_json = "bad_json";
inline constexpr std::string_view bad_request = "bad_request";
inline constexpr std::string_view unknown_command = "unknown_command";
inline constexpr std::string_view not_found = "not_found";
inline constexpr std::string_view forbidden = "forbidden";
inline constexpr std::string_view too_large = "too_large";  // a request line over 64 KiB
// prefork's own:
inline constexpr std::string_view reload_failed = "reload_failed";  // a waited-for reload did not start
inline constexpr std::string_view reopen_failed = "reopen_failed";  // reopen_logs could not reopen the file
}  // namespace control_code

/// An error a command reports: `code` is one of the SPEC's error codes
/// (bad_request, not_found, ...), `message` is for people.
struct command_error {
  std::string code;
  std::string message;
};

/// Lets boost::system::result<T, command_error>::value() throw std::runtime_error("code: message").
[[noreturn]] void throw_exception_from_error(const command_error& error, const boost::source_location& location);

enum class stop_kind { graceful, fast };
enum class kill_signal { term, kill };

class control_target {
 public:
  virtual ~control_target() = default;

  /// `status` result: pid, version, uptime_s, generation, state, workers{desired, ready,
  /// starting, draining}, listeners[{bind, address}], dispatch.
  virtual boost::json::object status() = 0;
  /// `workers` result: [{id, pid, generation, state, active, served, started_at,
  /// last_heartbeat_ms, rss_bytes}].
  virtual boost::json::array workers() = 0;
  /// `stats` result: the counters of SPEC section 3.
  virtual boost::json::object stats() = 0;
  /// `config` result: the effective configuration.
  virtual boost::json::object effective_config() = 0;
  /// Sets the desired worker count (>= 1, validated by the caller); returns it.
  virtual std::uint64_t scale(std::uint64_t desired) = 0;
  /// Starts a reload; returns the new generation. With `wait`, completes once the new
  /// generation serves and the old one is gone (or with an error if the reload failed).
  virtual boost::asio::awaitable<boost::system::result<std::uint64_t, command_error>> reload(bool wait) = 0;
  /// Stops the master (called after the reply `{}` has been written).
  virtual void stop(stop_kind kind) = 0;
  /// Signals worker `id`; returns its pid, or not_found.
  virtual boost::system::result<std::int64_t, command_error> kill_worker(std::int64_t id, kill_signal signal) = 0;
  /// Pauses / resumes worker `id` (a paused worker keeps its connections, gets no new
  /// ones); not_found if there is no such live worker.
  virtual boost::system::result<void, command_error> pause_worker(std::int64_t id) = 0;
  virtual boost::system::result<void, command_error> resume_worker(std::int64_t id) = 0;
  /// Reopens the log files of the master and its workers.
  virtual boost::system::result<void, command_error> reopen_logs() = 0;
};

}  // namespace prefork::detail
