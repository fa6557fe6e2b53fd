#include "master/reload_sequencer.hpp"

namespace prefork::detail {

reload_sequencer::request_action reload_sequencer::request() noexcept {
  if (!active_) {
    active_ = true;  // reserved until started() or failed_to_start()
    next_ = previous_ = 0;
    return request_action::start;
  }
  if (queued_) return request_action::already_queued;
  queued_ = true;
  return request_action::queued;
}

void reload_sequencer::started(std::uint64_t next, std::uint64_t previous, time_point deadline) noexcept {
  active_ = true;
  next_ = next;
  previous_ = previous;
  deadline_ = deadline;
}

bool reload_sequencer::failed_to_start() noexcept { return finished(); }

reload_sequencer::outcome reload_sequencer::on_ready(std::uint64_t generation, int ready, int desired) noexcept {
  if (!active_ || generation != next_ || next_ == 0) return outcome::none;
  return ready >= desired ? outcome::switch_over : outcome::none;
}

reload_sequencer::outcome reload_sequencer::on_worker_failed(std::uint64_t generation) noexcept {
  if (!active_ || generation != next_ || next_ == 0) return outcome::none;
  return outcome::abandon;
}

reload_sequencer::outcome reload_sequencer::on_tick(time_point now) const noexcept {
  if (!active_ || next_ == 0) return outcome::none;
  return now >= deadline_ ? outcome::abandon : outcome::none;
}

bool reload_sequencer::finished() noexcept {
  active_ = false;
  next_ = previous_ = 0;
  if (!queued_) return false;
  queued_ = false;
  return true;
}

}  // namespace prefork::detail
