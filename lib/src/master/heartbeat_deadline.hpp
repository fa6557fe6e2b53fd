// Per worker: when the master must give up on a worker that stopped sending heartbeats.
// Time is passed in (steady_clock time points); no clock or timer inside.
#pragma once

#include <algorithm>
#include <chrono>

namespace prefork::detail {

class heartbeat_deadline {
 public:
  using clock = std::chrono::steady_clock;
  using duration = clock::duration;
  using time_point = clock::time_point;

  /// A worker started at `started` must send its first heartbeat within `timeout`.
  heartbeat_deadline(duration timeout, time_point started) noexcept : timeout_(timeout), last_seen_(started) {}

  /// A heartbeat (or any sign of life) arrived at `when`. A time older than the last one
  /// seen is ignored: the deadline never moves back.
  void seen(time_point when) noexcept { last_seen_ = std::max(last_seen_, when); }

  /// Whether the worker has been silent for `timeout` or longer at `now`.
  bool expired(time_point now) const noexcept { return now >= deadline(); }

  /// How long the worker has been silent at `now` (zero if `now` precedes the last sign
  /// of life); for logs and `last_heartbeat_ms`.
  duration silence(time_point now) const noexcept { return now > last_seen_ ? now - last_seen_ : duration::zero(); }

  /// When the worker expires unless it is seen again: last sign of life + timeout.
  time_point deadline() const noexcept { return last_seen_ + timeout_; }

  /// The last sign of life (the start time until the first heartbeat).
  time_point last_seen() const noexcept { return last_seen_; }

 private:
  duration timeout_;
  time_point last_seen_;
};

}  // namespace prefork::detail
