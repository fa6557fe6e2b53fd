#include "prefork/worker_context.hpp"

#include "prefork/connection.hpp"

#include <unistd.h>

namespace prefork {

worker_context::worker_context(boost::asio::any_io_executor executor, const config& cfg, int id,
                               std::uint64_t generation)
    : executor_(std::move(executor)), config_(cfg), id_(id), generation_(generation), pid_(::getpid()) {}

void worker_context::begin_drain() {
  draining_ = true;
  // Cancelling the idle wait wakes the handler; it sees draining() and ends. Entries
  // unlink themselves when wait_for_request returns, so iterate over a stable snapshot
  // of owners by cancelling only (no unlink here).
  for (idle_entry& entry : idle_) {
    boost::system::error_code ignored;
    entry.owner->socket_.cancel(ignored);
  }
}

}  // namespace prefork
