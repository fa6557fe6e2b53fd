#include "master/worker_state.hpp"

namespace prefork::detail {

std::string_view to_string(worker_state state) noexcept {
  switch (state) {
    case worker_state::starting: return "starting";
    case worker_state::ready: return "ready";
    case worker_state::draining: return "draining";
    case worker_state::paused: return "paused";
    case worker_state::backoff: return "backoff";
    case worker_state::gone: return "gone";
  }
  return "unknown";
}

std::string_view to_string(worker_event event) noexcept {
  switch (event) {
    case worker_event::ready_received: return "ready_received";
    case worker_event::pause: return "pause";
    case worker_event::resume: return "resume";
    case worker_event::drain: return "drain";
    case worker_event::exited: return "exited";
    case worker_event::backoff_elapsed: return "backoff_elapsed";
    case worker_event::start_delayed: return "start_delayed";
  }
  return "unknown";
}

std::optional<worker_state> next_state(worker_state current, worker_event event) noexcept {
  using state = worker_state;
  using ev = worker_event;
  const bool live =
      current == state::starting || current == state::ready || current == state::paused || current == state::draining;
  switch (event) {
    case ev::ready_received:
      if (current == state::starting) return state::ready;
      break;
    case ev::pause:
      if (current == state::ready) return state::paused;
      break;
    case ev::resume:
      if (current == state::paused) return state::ready;
      break;
    case ev::drain:
      if (current == state::starting || current == state::ready || current == state::paused) return state::draining;
      break;
    case ev::exited:
      if (live) return state::gone;
      break;
    case ev::backoff_elapsed:
      if (current == state::backoff) return state::starting;
      break;
    case ev::start_delayed:
      if (current == state::starting) return state::backoff;
      break;
  }
  return std::nullopt;
}

bool takes_new_connections(worker_state state) noexcept { return state == worker_state::ready; }

std::uint64_t recycle_threshold(long max_requests, long jitter, std::uint64_t random_value) noexcept {
  if (max_requests <= 0) return 0;
  // In unsigned arithmetic: jitter + 1 cannot overflow, and the sum stays below 2^64.
  const std::uint64_t spread = jitter > 0 ? static_cast<std::uint64_t>(jitter) + 1 : 1;
  return static_cast<std::uint64_t>(max_requests) + random_value % spread;
}

}  // namespace prefork::detail
