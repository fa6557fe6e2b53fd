// The worker lifecycle as a plain state machine (starting -> ready -> draining -> gone ->
// backoff -> starting), which states take new connections, and the recycle threshold.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace prefork::detail {

/// Where a worker (or its slot) is in its life.
enum class worker_state {
  starting,  // forked, has not reported ready yet
  ready,     // serving and taking new connections
  draining,  // finishing its connections, takes no new ones, will exit
  paused,    // keeps its connections, takes no new ones (pause_worker)
  backoff,   // slot waiting for its restart delay after young deaths (no process)
  gone,      // the process exited (the master decides whether the slot restarts)
};

/// The state's name as `status`/`workers` report it: "starting", "ready", "draining",
/// "paused", "backoff", "gone".
std::string_view to_string(worker_state state) noexcept;

/// What happened to a worker.
enum class worker_event {
  ready_received,   // the worker sent its ready message
  pause,            // pause_worker
  resume,           // resume_worker
  drain,            // retire it (reload, recycle, scale down, stop)
  exited,           // its process handle reported the exit
  backoff_elapsed,  // the slot's restart delay passed
  start_delayed,    // a new slot waits for its restart delay before its first fork
};

/// The event's name, for logs ("ready_received", "pause", ...).
std::string_view to_string(worker_event event) noexcept;

/// The next state, or std::nullopt when the event is invalid in that state (the caller
/// logs it and keeps the current state). Valid transitions:
///   starting -(ready_received)-> ready;  ready -(pause)-> paused -(resume)-> ready;
///   starting|ready|paused -(drain)-> draining;
///   starting|ready|paused|draining -(exited)-> gone;
///   backoff -(backoff_elapsed)-> starting;  starting -(start_delayed)-> backoff (a new
///   slot, before any fork: a crashed worker's replacement waiting out its backoff).
/// A gone worker's slot is not reused: its replacement is a new record.
std::optional<worker_state> next_state(worker_state current, worker_event event) noexcept;

/// Whether the dispatcher may choose a worker in this state (only `ready`).
bool takes_new_connections(worker_state state) noexcept;

/// The number of requests after which a worker is recycled: 0 (never) when
/// `max_requests` <= 0, else `max_requests + random_value % (jitter + 1)` (a negative
/// jitter counts as 0), so that workers started together do not all recycle at once.
std::uint64_t recycle_threshold(long max_requests, long jitter, std::uint64_t random_value) noexcept;

}  // namespace prefork::detail
