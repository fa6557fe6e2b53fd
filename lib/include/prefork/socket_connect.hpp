// Connecting a stream socket (Unix or TCP) under a deadline, truthfully. Linux answers
// connect(2) on a Unix stream socket whose listener's backlog is full with EAGAIN: nothing
// is in progress then, and Asio's connect takes it for "in progress", waits for
// writability and reports a success that fails on the first write (ENOTCONN). These
// calls retry a full backlog until the deadline instead, and wait for a real connect in
// progress (TCP) with poll(2). preforkctl, prefork::testing and prefork-bench use them.
#pragma once

#include <boost/system/error_code.hpp>

#include <chrono>
#include <sys/socket.h>

namespace prefork {

/// What one non-blocking connect(2) attempt said.
enum class connect_progress {
  connected,     // done
  in_progress,   // TCP: wait for writability, then read SO_ERROR (finish_connect)
  backlog_full,  // Unix: the listener's backlog is full; nothing happened, try again later
  failed,        // refused, no such file, permission, ...: `error` says which
};

struct connect_attempt {
  connect_progress progress = connect_progress::failed;
  boost::system::error_code error;  // failed: the errno
};

/// One connect(2) of the non-blocking descriptor `fd` to `address` (EINTR is retried).
connect_attempt try_connect(int fd, const sockaddr* address, socklen_t length) noexcept;

/// The outcome of a connect that was in progress, once `fd` polled writable (SO_ERROR).
boost::system::error_code finish_connect(int fd) noexcept;

/// Connects `fd` to `address` before `deadline`. A full Unix backlog is retried with a
/// backoff from 1 ms doubling to 16 ms; a TCP connect in progress is waited for with poll.
/// The descriptor's blocking mode is restored. Errors: the connect's own (connection
/// refused, no such file, ...); errc::backlog_full when the backlog stayed full until the
/// deadline; asio::error::timed_out when a connect in progress did not finish by then.
boost::system::error_code connect_until(int fd, const sockaddr* address, socklen_t length,
                                        std::chrono::steady_clock::time_point deadline) noexcept;

/// The same for an Asio socket (any stream protocol): opens it for the endpoint's protocol
/// when it is closed; closes it again when the connect fails.
template <class Socket>
boost::system::error_code connect_until(Socket& socket, const typename Socket::endpoint_type& endpoint,
                                        std::chrono::steady_clock::time_point deadline) {
  boost::system::error_code ec;
  if (!socket.is_open()) socket.open(endpoint.protocol(), ec);
  if (ec) return ec;
  ec = connect_until(socket.native_handle(), static_cast<const sockaddr*>(endpoint.data()),
                     static_cast<socklen_t>(endpoint.size()), deadline);
  if (ec) {
    boost::system::error_code ignored;
    socket.close(ignored);
  }
  return ec;
}

}  // namespace prefork
