// The master process: accepts on every listener, hands each connection to a worker over
// its channel, watches workers through Boost.Process v2 handles, restarts, times out and
// stops them, and never loses a connection it accepted.
#pragma once

#include "prefork/app.hpp"
#include "prefork/config.hpp"
#include "prefork/detail/listener.hpp"

#include <cstdint>
#include <vector>

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

/// Runs the master on the calling thread until it stops (TERM, INT, QUIT) and returns the
/// process exit status. Takes ownership of the open listeners and closes them (removing
/// the socket files it created) before returning. Must be called with the handled signals
/// blocked (signal_reader.hpp) and no other thread running, since it forks.
int run_master(const config& settings, const app& application, std::vector<listener> listeners);

}  // namespace prefork::detail
