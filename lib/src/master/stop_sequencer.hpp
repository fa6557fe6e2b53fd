// The stop decision (SPEC 2: TERM stops gracefully, INT and QUIT fast): the first request
// stops the master, a fast one escalates a graceful stop, anything else while stopping
// changes nothing. Plain state: no clock, no I/O.
#pragma once

#include "control/control_target.hpp"

#include <chrono>

namespace prefork::detail {

class stop_sequencer {
 public:
  enum class action {
    ignore,    // already stopping this way (or faster)
    begin,     // not stopping yet: stop now
    escalate,  // stopping gracefully, now asked to stop fast
  };

  /// A stop was asked for (a signal, the control socket, an upgrade handing over).
  action request(stop_kind kind) noexcept;

  bool stopping() const noexcept { return stopping_; }
  stop_kind kind() const noexcept { return kind_; }
  /// How long workers get before they are killed: `graceful_timeout`, or 1 s once fast.
  std::chrono::milliseconds deadline(std::chrono::milliseconds graceful_timeout) const noexcept;

 private:
  bool stopping_ = false;
  stop_kind kind_ = stop_kind::graceful;
};

}  // namespace prefork::detail
