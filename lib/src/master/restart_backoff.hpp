// Per worker slot: how long to wait before starting a worker again after one died young
// (exponential backoff, capped). Time is passed in; no clock or timer inside.
#pragma once

#include "prefork/config.hpp"

#include <chrono>

namespace prefork::detail {

class restart_backoff {
 public:
  /// Uses `cfg.min_uptime`, `cfg.backoff_initial` and `cfg.backoff_max`; negative
  /// durations count as zero.
  explicit restart_backoff(restart_config cfg) noexcept;

  /// A worker of this slot exited after living `uptime`. Returns the delay before the slot
  /// may start again: zero if `uptime >= min_uptime` (and the failure streak resets);
  /// otherwise `backoff_initial * 2^(streak - 1)`, capped at `backoff_max` (the streak
  /// counts consecutive young deaths, this one included; no overflow however long it is).
  std::chrono::milliseconds on_exit(std::chrono::milliseconds uptime) noexcept;

  /// Consecutive exits younger than `min_uptime` (0 after a long-lived run). Saturates.
  unsigned streak() const noexcept { return streak_; }

 private:
  restart_config cfg_;
  unsigned streak_ = 0;
};

}  // namespace prefork::detail
