// The request deadline of http::serve. One steady_timer per connection, armed lazily:
// starting a request only records its deadline; the timer re-arms itself when it fires
// early, so a request costs no timer syscall. On expiry it cancels the socket's pending
// read or write. The state is shared with the timer's handler, which may run after the
// session ended.
#pragma once

#include "prefork/connection.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <cstdint>
#include <memory>

namespace prefork::http::detail {

struct deadline_state {
  using clock_type = std::chrono::steady_clock;

  explicit deadline_state(const boost::asio::any_io_executor& executor) : timer(executor) {}

  boost::asio::steady_timer timer;
  connection* conn = nullptr;  // null once the session ended
  clock_type::time_point deadline{};
  clock_type::time_point armed_until = clock_type::time_point::max();  // max: no wait pending
  std::uint64_t arm_sequence = 0;
  bool active = false;
  bool expired = false;
};

/// Waits until state->deadline (cancelling a pending wait); on expiry cancels state->conn
/// and sets state->expired.
void arm_deadline_timer(const std::shared_ptr<deadline_state>& state);

/// Cancels the timer when the session ends (normally or not) and tells a handler still
/// queued that the socket is gone.
struct deadline_guard {
  deadline_state& state;
  ~deadline_guard() {
    state.conn = nullptr;
    state.active = false;
    state.timer.cancel();
  }
};

}  // namespace prefork::http::detail
