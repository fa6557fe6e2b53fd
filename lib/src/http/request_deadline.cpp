// The request deadline's timer handler: re-arms when it fired early, cancels the
// connection's pending operation when the deadline passed.
#include "http/request_deadline.hpp"

#include <boost/system/error_code.hpp>

namespace prefork::http::detail {
namespace {

using boost::system::error_code;
using clock_type = deadline_state::clock_type;

// After a deadline expired, the socket is cancelled again at this pace until the session
// ends the deadline.
constexpr std::chrono::milliseconds recancel_interval{100};

struct deadline_handler {
  std::shared_ptr<deadline_state> state;
  std::uint64_t sequence;

  void operator()(error_code ec) const {
    deadline_state& s = *state;
    if (sequence != s.arm_sequence) return;  // superseded by a later, earlier-expiring wait
    s.armed_until = clock_type::time_point::max();
    if (ec || s.conn == nullptr || !s.active) return;
    if (clock_type::now() < s.deadline) {
      arm_deadline_timer(state);
      return;
    }
    s.expired = true;
    s.conn->cancel();
    // The cancel hits nothing if an operation was completing right now and the next
    // step of a composed write starts after it: cancel again until the owner reacts.
    s.deadline = clock_type::now() + recancel_interval;
    arm_deadline_timer(state);
  }
};

}  // namespace

void arm_deadline_timer(const std::shared_ptr<deadline_state>& state) {
  state->armed_until = state->deadline;
  state->timer.expires_at(state->deadline);  // cancels a pending wait: its sequence is stale
  state->timer.async_wait(deadline_handler{state, ++state->arm_sequence});
}

}  // namespace prefork::http::detail
