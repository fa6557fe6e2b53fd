#include "master/stop_sequencer.hpp"

namespace prefork::detail {

stop_sequencer::action stop_sequencer::request(stop_kind kind) noexcept {
  if (!stopping_) {
    stopping_ = true;
    kind_ = kind;
    return action::begin;
  }
  if (kind == stop_kind::fast && kind_ == stop_kind::graceful) {
    kind_ = stop_kind::fast;
    return action::escalate;
  }
  return action::ignore;
}

std::chrono::milliseconds stop_sequencer::deadline(std::chrono::milliseconds graceful_timeout) const noexcept {
  return kind_ == stop_kind::graceful ? graceful_timeout : std::chrono::milliseconds(1000);
}

}  // namespace prefork::detail
