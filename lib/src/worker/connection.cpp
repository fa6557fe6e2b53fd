#include "prefork/connection.hpp"

#include "prefork/log.hpp"
#include "prefork/worker_context.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <utility>

namespace prefork {

namespace asio = boost::asio;
using namespace asio::experimental::awaitable_operators;

connection::connection(socket_type socket, std::uint32_t listener_index, worker_context& worker)
    : socket_(std::move(socket)), protocol_(AF_UNIX, 0), listener_index_(listener_index), worker_(&worker) {}

connection::connection(int fd, const asio::generic::stream_protocol& protocol, const asio::any_io_executor& executor,
                       std::uint32_t listener_index, worker_context& worker)
    : socket_(executor), fd_(fd), protocol_(protocol), listener_index_(listener_index), worker_(&worker) {}

connection::~connection() {
  if (fd_ >= 0) ::close(fd_);
}

connection::connection(connection&& other) noexcept
    : socket_(std::move(other.socket_)),
      fd_(std::exchange(other.fd_, -1)),
      protocol_(other.protocol_),
      listener_index_(other.listener_index_),
      worker_(other.worker_) {}

connection& connection::operator=(connection&& other) noexcept {
  if (this != &other) {
    close();
    socket_ = std::move(other.socket_);
    fd_ = std::exchange(other.fd_, -1);
    protocol_ = other.protocol_;
    listener_index_ = other.listener_index_;
    worker_ = other.worker_;
  }
  return *this;
}

socket_type& connection::socket() noexcept {
  if (fd_ >= 0) {
    boost::system::error_code ec;
    socket_.assign(protocol_, fd_, ec);
    if (ec) {
      // The socket stays closed: the handler's operations report bad_descriptor and end it.
      ::close(fd_);
      log_error("cannot register connection with the event loop", {{"error", ec.message()}});
    }
    fd_ = -1;
  }
  return socket_;
}

std::size_t connection::try_read_some(asio::mutable_buffer buffer, boost::system::error_code& ec) noexcept {
  for (;;) {
    const ssize_t n = ::recv(native_handle(), buffer.data(), buffer.size(), MSG_DONTWAIT);
    if (n > 0) {
      ec = {};
      return static_cast<std::size_t>(n);
    }
    if (n == 0) {
      ec = buffer.size() == 0 ? boost::system::error_code{} : asio::error::eof;
      return 0;
    }
    if (errno == EINTR) continue;
    ec = errno == EAGAIN || errno == EWOULDBLOCK ? asio::error::would_block
                                                 : boost::system::error_code(errno, asio::error::get_system_category());
    return 0;
  }
}

std::size_t connection::try_write_some(std::span<const asio::const_buffer> buffers,
                                       boost::system::error_code& ec) noexcept {
  std::array<iovec, 2> vectors{};
  std::size_t count = 0;
  for (const auto& buffer : buffers) {
    if (buffer.size() == 0) continue;
    if (count == vectors.size()) break;
    vectors[count].iov_base = const_cast<void*>(buffer.data());
    vectors[count].iov_len = buffer.size();
    ++count;
  }
  if (count == 0) {
    ec = {};
    return 0;
  }
  msghdr message{};
  message.msg_iov = vectors.data();
  message.msg_iovlen = count;
  for (;;) {
    const ssize_t n = ::sendmsg(native_handle(), &message, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n >= 0) {
      ec = {};
      return static_cast<std::size_t>(n);
    }
    if (errno == EINTR) continue;
    ec = errno == EAGAIN || errno == EWOULDBLOCK ? asio::error::would_block
                                                 : boost::system::error_code(errno, asio::error::get_system_category());
    return 0;
  }
}

std::size_t connection::available() noexcept {
  int bytes = 0;
  if (::ioctl(native_handle(), FIONREAD, &bytes) != 0 || bytes < 0) return 0;
  return static_cast<std::size_t>(bytes);
}

void connection::cancel() noexcept {
  boost::system::error_code ignored;
  if (fd_ < 0) socket_.cancel(ignored);
}

void connection::close() noexcept {
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
  }
  boost::system::error_code ignored;
  socket_.close(ignored);
}

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
    worker_->hand_back(socket(), listener_index_);
    co_return wait_result::drained;
  }
  // Registered while idle so that begin_drain() can wake us; unlinks itself on return.
  worker_context::idle_entry entry;
  entry.owner = this;
  worker_->idle_.push_back(entry);

  asio::steady_timer timer(get_executor(), idle_timeout);
  auto outcome = co_await (socket().async_wait(socket_type::wait_read, asio::as_tuple(asio::use_awaitable)) ||
                           timer.async_wait(asio::as_tuple(asio::use_awaitable)));
  if (drain_ends_idle(*worker_) || !socket_.is_open()) co_return wait_result::drained;
  if (outcome.index() == 1) co_return wait_result::idle_timeout;
  auto [ec] = std::get<0>(outcome);
  co_return ec ? wait_result::error : wait_result::readable;
}

}  // namespace prefork
