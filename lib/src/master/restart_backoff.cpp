#include "master/restart_backoff.hpp"

#include <algorithm>
#include <limits>

namespace prefork::detail {

using std::chrono::milliseconds;

restart_backoff::restart_backoff(restart_config cfg) noexcept : cfg_(cfg) {
  cfg_.min_uptime = std::max(cfg_.min_uptime, milliseconds::zero());
  cfg_.backoff_initial = std::max(cfg_.backoff_initial, milliseconds::zero());
  cfg_.backoff_max = std::max(cfg_.backoff_max, milliseconds::zero());
}

milliseconds restart_backoff::on_exit(milliseconds uptime) noexcept {
  if (uptime >= cfg_.min_uptime) {
    streak_ = 0;
    return milliseconds::zero();
  }
  if (streak_ != std::numeric_limits<unsigned>::max()) ++streak_;

  const auto initial = cfg_.backoff_initial.count();
  const auto cap = cfg_.backoff_max.count();
  if (initial == 0) return milliseconds::zero();  // 0 * 2^n, however long the streak
  if (initial >= cap) return cfg_.backoff_max;
  // initial <= cap >> shift guarantees initial << shift <= cap, so the shift cannot
  // overflow; anything larger is capped without computing it.
  const unsigned shift = streak_ - 1;
  constexpr unsigned rep_bits = std::numeric_limits<milliseconds::rep>::digits;
  if (shift >= rep_bits) return cfg_.backoff_max;
  if (initial > (cap >> shift)) return cfg_.backoff_max;
  return milliseconds{initial << shift};
}

}  // namespace prefork::detail
