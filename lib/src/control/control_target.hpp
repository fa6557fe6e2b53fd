// What the control socket can ask of the master. The master implements it; the control
// server (control_server.hpp) validates requests, calls these, and writes the replies.
#pragma once

#include "prefork/error.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/json/array.hpp>
#include <boost/json/object.hpp>

#include <cstdint>
#include <string>
#include <string_view>

namespace prefork::detail {

/// A command's errors are prefork::failure with a control code of prefork::errc
/// (errc::not_found, errc::bad_request, ...: prefork/error.hpp lists them in SPEC order);
/// the reply carries its wire name (control_code_name) and the message.

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
  virtual boost::asio::awaitable<result<std::uint64_t>> reload(bool wait) = 0;
  /// Stops the master (called after the reply `{}` has been written).
  virtual void stop(stop_kind kind) = 0;
  /// Signals worker `id`; returns its pid, or not_found.
  virtual result<std::int64_t> kill_worker(std::int64_t id, kill_signal signal) = 0;
  /// Pauses / resumes worker `id` (a paused worker keeps its connections, gets no new
  /// ones); not_found if there is no such live worker.
  virtual result<void> pause_worker(std::int64_t id) = 0;
  virtual result<void> resume_worker(std::int64_t id) = 0;
  /// Reopens the log files of the master and its workers.
  virtual result<void> reopen_logs() = 0;
};

}  // namespace prefork::detail
