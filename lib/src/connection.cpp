#include "prefork/connection.hpp"

#include "prefork/worker_context.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace prefork {

namespace asio = boost::asio;
using namespace asio::experimental::awaitable_operators;

connection::connection(socket_type socket, std::uint32_t listener_index, worker_context& worker)
    : socket_(std::move(socket)), listener_index_(listener_index), worker_(&worker) {}

bool connection::draining() const noexcept { return worker_->draining(); }

namespace {
/// Whether a drain ends connections that are idle between requests.
bool drain_ends_idle(const worker_context& worker) {
  return worker.draining() && worker.drain_policy() != worker_context::idle_policy::serve_last;
}
}  // namespace

asio::awaitable<wait_result> connection::wait_for_request(std::chrono::steady_clock::duration idle_timeout) {
  if (drain_ends_idle(*worker_)) {
    // Idle only now (say, its last response was still being written when the drain
    // began, built as keep-alive): the client may reuse it, so it too goes back.
    worker_->hand_back(socket_, listener_index_);
    co_return wait_result::drained;
  }
  // Registered while idle so that begin_drain() can wake us; unlinks itself on return.
  worker_context::idle_entry entry;
  entry.owner = this;
  worker_->idle_.push_back(entry);

  asio::steady_timer timer(socket_.get_executor(), idle_timeout);
  auto outcome = co_await (socket_.async_wait(socket_type::wait_read, asio::as_tuple(asio::use_awaitable)) ||
                           timer.async_wait(asio::as_tuple(asio::use_awaitable)));
  if (drain_ends_idle(*worker_) || !socket_.is_open()) co_return wait_result::drained;
  if (outcome.index() == 1) co_return wait_result::idle_timeout;
  auto [ec] = std::get<0>(outcome);
  co_return ec ? wait_result::error : wait_result::readable;
}

}  // namespace prefork
