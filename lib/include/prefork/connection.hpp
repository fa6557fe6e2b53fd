// One client connection handed to a worker: its socket, where it came from, and the
// worker's context. Passed by value to the app's handler.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/generic/stream_protocol.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <span>

namespace prefork {

class worker_context;

/// Stream socket of any family (Unix or TCP), on the worker's executor.
using socket_type = boost::asio::generic::stream_protocol::socket;

/// Outcome of connection::wait_for_request.
enum class wait_result {
  readable,      // bytes (or EOF) are ready to read
  idle_timeout,  // nothing arrived within the idle timeout
  drained,       // the worker is draining: end the connection without reading
  error,         // the socket failed
};

class connection {
 public:
  /// A connection whose socket is already open on the worker's executor.
  connection(socket_type socket, std::uint32_t listener_index, worker_context& worker);
  /// A connection on descriptor `fd` (a stream socket of `protocol`, owned from now on)
  /// that is not yet registered with the executor's reactor: socket() registers it on
  /// first use. Until then try_read_some, try_write_some and close work on the bare
  /// descriptor, so a request answered at once (the usual case for a new connection, whose
  /// request is already there) costs no reactor registration (epoll_ctl add and delete,
  /// and Asio's ioctl to make it non-blocking) at all.
  connection(int fd, const boost::asio::generic::stream_protocol& protocol,
             const boost::asio::any_io_executor& executor, std::uint32_t listener_index, worker_context& worker);
  ~connection();
  connection(connection&& other) noexcept;
  connection& operator=(connection&& other) noexcept;

  /// The socket, registered with the reactor on the first call. Should registration fail
  /// (out of memory), the descriptor is closed and the socket's operations report it.
  socket_type& socket() noexcept;
  /// The executor the connection's work runs on (the worker's), without registering.
  const boost::asio::any_io_executor& get_executor() noexcept { return socket_.get_executor(); }
  /// The descriptor, registered or not; -1 once closed.
  int native_handle() noexcept { return fd_ >= 0 ? fd_ : socket_.native_handle(); }
  /// Whether socket() was called (the descriptor is registered with the reactor).
  bool registered() const noexcept { return fd_ < 0; }

  /// Reads what is there now without waiting (recv with MSG_DONTWAIT): the byte count, or
  /// an error: boost::asio::error::would_block when nothing is there yet, eof when the
  /// peer closed, else the socket's error.
  std::size_t try_read_some(boost::asio::mutable_buffer buffer, boost::system::error_code& ec) noexcept;
  /// Writes what fits now without waiting (sendmsg with MSG_DONTWAIT | MSG_NOSIGNAL, at
  /// most 2 buffers): the byte count (possibly less than asked), or would_block or the
  /// socket's error (broken_pipe, connection_reset...).
  std::size_t try_write_some(std::span<const boost::asio::const_buffer> buffers,
                             boost::system::error_code& ec) noexcept;
  /// Bytes received and not read yet (FIONREAD); 0 on error.
  std::size_t available() noexcept;
  /// Cancels the socket's pending operations (nothing is pending before registration).
  void cancel() noexcept;
  /// Closes the connection (the descriptor, or the socket). Idempotent.
  void close() noexcept;

  /// Index of the listener (in the config's `bind` order) that accepted it.
  std::uint32_t listener_index() const noexcept { return listener_index_; }
  worker_context& worker() const noexcept { return *worker_; }
  /// Same as worker().draining().
  bool draining() const noexcept;

  /// Waits, while the connection is idle (the handler has nothing of a next request
  /// buffered), until it becomes readable, `idle_timeout` passes, or the worker drains.
  /// The connection must not be moved while this is pending.
  boost::asio::awaitable<wait_result> wait_for_request(std::chrono::steady_clock::duration idle_timeout);

 private:
  friend class worker_context;
  socket_type socket_;
  int fd_ = -1;  // a descriptor not registered yet, or -1
  boost::asio::generic::stream_protocol protocol_;
  std::uint32_t listener_index_;
  worker_context* worker_;
};

}  // namespace prefork
