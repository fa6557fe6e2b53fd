// The reload decision (SPEC 2, HUP): one reload at a time, at most one queued behind it;
// a new generation switches over once all its workers are ready, and is abandoned if one
// of them fails or the deadline passes. Plain state: no clock, no I/O.
#pragma once

#include <chrono>
#include <cstdint>

namespace prefork::detail {

class reload_sequencer {
 public:
  using time_point = std::chrono::steady_clock::time_point;

  enum class request_action {
    start,           // no reload running: start one now
    queued,          // one is running: this one starts after it
    already_queued,  // one is running and one is queued: nothing more to do
  };
  enum class outcome {
    none,         // keep waiting
    switch_over,  // every new worker is ready: retire the old generation
    abandon,      // the new generation failed: stop it, keep the old one
  };

  /// A reload was asked for (HUP or the control socket).
  request_action request() noexcept;

  /// The master started generation `next` (replacing `previous`), due by `deadline`.
  void started(std::uint64_t next, std::uint64_t previous, time_point deadline) noexcept;

  /// The master could not even start it (bad config file, listener failure).
  /// Returns true when a queued reload should start now.
  bool failed_to_start() noexcept;

  /// A worker of `generation` became ready; `ready` of `desired` are ready now.
  outcome on_ready(std::uint64_t generation, int ready, int desired) noexcept;
  /// A worker of `generation` died before the switch.
  outcome on_worker_failed(std::uint64_t generation) noexcept;
  /// Time passed; abandons a reload past its deadline.
  outcome on_tick(time_point now) const noexcept;

  /// The switch-over or the abandon was carried out. Returns true when a queued reload
  /// should start now.
  bool finished() noexcept;

  bool active() const noexcept { return active_; }
  bool queued() const noexcept { return queued_; }
  std::uint64_t next_generation() const noexcept { return next_; }
  std::uint64_t previous_generation() const noexcept { return previous_; }

 private:
  bool active_ = false;
  bool queued_ = false;
  std::uint64_t next_ = 0;
  std::uint64_t previous_ = 0;
  time_point deadline_{};
};

}  // namespace prefork::detail
