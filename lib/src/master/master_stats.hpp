// The master's counters (SPEC `stats`), shared by the control socket and the metrics.
#pragma once

#include "prefork/log.hpp"

#include <boost/json/object.hpp>

#include <array>
#include <cstdint>

namespace prefork::detail {

/// Counters since the master started, kept across worker restarts (SPEC `stats`).
struct master_stats {
  std::uint64_t accepted = 0;
  std::uint64_t dispatched = 0;
  std::uint64_t redispatched = 0;
  std::uint64_t migrated = 0;
  std::uint64_t lost = 0;
  std::uint64_t accept_pauses = 0;
  std::uint64_t worker_exits = 0;
  std::uint64_t worker_crashes = 0;
  std::uint64_t worker_timeouts = 0;
  std::uint64_t worker_recycled = 0;
  std::uint64_t reloads = 0;
  std::uint64_t requests = 0;
};

/// The counters as log fields named as `stats` names them, in SPEC order: one list for the
/// control reply and the "stopped" log line.
std::array<log_field, 12> stats_fields(const master_stats& stats);

/// The `stats` reply: every counter of stats_fields().
boost::json::object to_json(const master_stats& stats);

}  // namespace prefork::detail
