// The master's Prometheus metrics: a fixed-bucket latency histogram cheap enough for the
// handoff path, a plain snapshot of the counters and gauges, and its rendering in the text
// exposition format 0.0.4.
#pragma once

#include "master/master_stats.hpp"

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>

namespace prefork::detail {

/// Latencies in fixed buckets from 1 us to 1 s (1, 2.5, 5 per decade). record() is a few
/// compares and additions: no allocation, no clock, no lock (one thread owns it).
class prometheus_histogram {
 public:
  static constexpr std::size_t bucket_count = 19;  // finite upper bounds; +Inf is implicit

  /// Upper bounds of the finite buckets, ascending.
  static constexpr std::array<std::chrono::nanoseconds, bucket_count> upper_bounds{
      std::chrono::nanoseconds(1'000),        std::chrono::nanoseconds(2'500),
      std::chrono::nanoseconds(5'000),        std::chrono::nanoseconds(10'000),
      std::chrono::nanoseconds(25'000),       std::chrono::nanoseconds(50'000),
      std::chrono::nanoseconds(100'000),      std::chrono::nanoseconds(250'000),
      std::chrono::nanoseconds(500'000),      std::chrono::nanoseconds(1'000'000),
      std::chrono::nanoseconds(2'500'000),    std::chrono::nanoseconds(5'000'000),
      std::chrono::nanoseconds(10'000'000),   std::chrono::nanoseconds(25'000'000),
      std::chrono::nanoseconds(50'000'000),   std::chrono::nanoseconds(100'000'000),
      std::chrono::nanoseconds(250'000'000),  std::chrono::nanoseconds(500'000'000),
      std::chrono::nanoseconds(1'000'000'000)};

  /// The same bounds in seconds as Prometheus `le` label values ("1e-06" ... "1").
  static constexpr std::array<std::string_view, bucket_count> upper_bound_labels{
      "1e-06",  "2.5e-06", "5e-06", "1e-05", "2.5e-05", "5e-05", "0.0001", "0.00025", "0.0005", "0.001",
      "0.0025", "0.005",   "0.01",  "0.025", "0.05",    "0.1",   "0.25",   "0.5",     "1"};

  /// Counts one observation; a negative latency counts as 0.
  void record(std::chrono::nanoseconds latency) noexcept;

  /// Observations so far.
  std::uint64_t count() const noexcept { return count_; }
  /// Sum of the observations (negative ones as 0).
  std::chrono::nanoseconds sum() const noexcept { return std::chrono::nanoseconds(sum_nanoseconds_); }
  /// Observations <= upper_bounds[bucket] (cumulative, as Prometheus wants);
  /// bucket == bucket_count is +Inf, i.e. count().
  std::uint64_t cumulative_count(std::size_t bucket) const noexcept;

 private:
  std::array<std::uint64_t, bucket_count + 1> counts_{};  // per bucket, last one above 1 s
  std::uint64_t count_ = 0;
  std::int64_t sum_nanoseconds_ = 0;
};

/// Everything render_metrics() prints, copied out of the master at scrape time.
/// The counters are master_stats' (the SPEC `stats`).
struct metrics_snapshot : master_stats {
  // Workers per state name. The five SPEC states (starting, ready, draining, paused,
  // backoff) are always printed, 0 when absent; any other name is printed too.
  std::map<std::string, std::uint64_t, std::less<>> workers_by_state;
  std::uint64_t desired_workers = 0;
  std::uint64_t generation = 0;
  double uptime_seconds = 0;
  const prometheus_histogram* handoff = nullptr;  // null: printed as an empty histogram
};

/// The snapshot in the Prometheus text format 0.0.4: for each metric a `# HELP` and a
/// `# TYPE` line then its samples, '\n' line ends, a final newline. Names:
/// prefork_connections_{accepted,dispatched,redispatched,migrated,lost}_total,
/// prefork_accept_pauses_total, prefork_worker_{exits,crashes,timeouts,restarts,recycled}_total
/// (restarts = worker_exits: every exit is replaced), prefork_reloads_total,
/// prefork_requests_total (counters); prefork_workers{state="..."}, prefork_workers_desired,
/// prefork_generation, prefork_uptime_seconds (gauges); prefork_handoff_latency_seconds
/// (histogram: _bucket{le="..."} cumulative up to "+Inf", _sum in seconds, _count).
std::string render_metrics(const metrics_snapshot& snapshot);

}  // namespace prefork::detail
