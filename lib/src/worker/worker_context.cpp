#include "prefork/worker_context.hpp"

#include "prefork/connection.hpp"

#include <unistd.h>

namespace prefork {

worker_context::worker_context(boost::asio::any_io_executor executor, const config& cfg, int id,
                               std::uint64_t generation)
    : executor_(std::move(executor)), config_(cfg), id_(id), generation_(generation), pid_(::getpid()) {}

void worker_context::begin_drain(idle_policy policy, const handback_fn& handback) {
  draining_ = true;
  drain_policy_ = policy;
  handback_ = handback;
  if (policy == idle_policy::serve_last) return;
  // Releasing or cancelling wakes the idle wait; the handler resumes later, sees
  // draining() and ends. Entries unlink themselves when wait_for_request returns, so
  // nothing is unlinked here.
  for (idle_entry& entry : idle_) {
    boost::system::error_code ec;
    socket_type& socket = entry.owner->socket_;
    if (hand_back(socket, entry.owner->listener_index_)) continue;
    socket.cancel(ec);
  }
}

bool worker_context::hand_back(socket_type& socket, std::uint32_t listener_index) {
  if (!draining_ || drain_policy_ != idle_policy::hand_back || !handback_ || !socket.is_open()) return false;
  boost::system::error_code ec;
  int fd = socket.release(ec);
  if (ec) return false;
  handback_(fd, listener_index);
  return true;
}

}  // namespace prefork
