// Serves the master's control socket (SPEC section 3) on the master's own io_context:
// accepts connections, checks the peer's uid (SO_PEERCRED), reads request lines under a
// deadline, runs each command against a control_target and writes the replies in order.
#pragma once

#include "control/control_protocol.hpp"
#include "control/control_target.hpp"

#include <boost/asio/any_io_executor.hpp>

#include <chrono>
#include <cstddef>
#include <memory>

namespace prefork::detail {

struct control_server_options {
  /// A connection with no complete request for this long is closed. Trickling bytes does
  /// not extend it: the deadline runs from the previous reply (or from accept).
  std::chrono::milliseconds idle_timeout{60000};
  /// A reply not fully written within this is abandoned and the connection closed: a client
  /// that stops reading its replies costs at most one reply of memory, for this long.
  std::chrono::milliseconds write_timeout{10000};
  /// Connections served at once. One more is answered `{"ok":false,"error":{"code":
  /// "bad_request","message":"too many control connections"}}` and closed.
  std::size_t max_connections = 64;
  /// The longest request line (newline excluded); longer lines are answered `too_large`.
  std::size_t max_line = max_control_line;
};

/// The control socket server. Single-threaded: every member function, and the target, run
/// on the executor's thread (the master's loop); nothing blocks it.
///
/// Per connection, requests are handled one at a time in the order received, so replies
/// come in request order; a `reload` with `wait` delays the later requests of its own
/// connection only. After `stop` the reply `{}` is written (or failed to be written) before
/// target.stop() is called. A peer whose uid is neither ours (geteuid()) nor 0 receives one
/// `forbidden` error line, is logged as a warning with its uid and pid, and is closed.
/// Exceptions thrown by the target are logged and close that connection only.
class control_server {
 public:
  /// Adopts `listening_fd` (a listening, non-blocking AF_UNIX stream socket opened by the
  /// caller, e.g. with open_unix_listener and mode 0600): it is closed by close() or by the
  /// destructor; the socket file stays the caller's to remove. `target` must outlive the
  /// server. Throws boost::system::system_error if the descriptor cannot be adopted.
  control_server(boost::asio::any_io_executor executor, int listening_fd, control_target& target,
                 control_server_options options = {});
  /// Calls close().
  ~control_server();
  control_server(const control_server&) = delete;
  control_server& operator=(const control_server&) = delete;

  /// Starts accepting connections. Calling it again, or after close(), does nothing.
  void start();

  /// Stops accepting, closes the listening descriptor and every client connection; no
  /// target member is called afterwards (a pending `reload` wait completes into the void).
  /// Idempotent. Coroutines still pending finish on the executor on their own.
  void close() noexcept;

  /// Connections open now (being served, or being refused), for tests and status.
  std::size_t connection_count() const noexcept;

  struct state;  // shared with the connection coroutines, so that they may outlive the server

 private:
  std::shared_ptr<state> state_;
};

}  // namespace prefork::detail
