// One client connection handed to a worker: its socket, where it came from, and the
// worker's context. Passed by value to the app's handler.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/generic/stream_protocol.hpp>

#include <chrono>
#include <cstdint>

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
  connection(socket_type socket, std::uint32_t listener_index, worker_context& worker);
  connection(connection&&) noexcept = default;
  connection& operator=(connection&&) noexcept = default;

  socket_type& socket() noexcept { return socket_; }
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
  std::uint32_t listener_index_;
  worker_context* worker_;
};

}  // namespace prefork
