// A small synchronous client of the control socket (SPEC section 3), used by preforkctl,
// the test harness and scripts written in C++: connect, send one request line, read one
// reply line, each step under a deadline. Failures are values, never exceptions.
#pragma once

#include "prefork/error.hpp"

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>

namespace prefork {

/// A failed call is a prefork::failure whose code says why: errc::unreachable (cannot
/// connect: no socket file, nobody accepts, no permission, path too long; the message
/// names the system error), errc::timeout (a deadline passed before the step finished),
/// errc::disconnected (the connection failed or closed before a whole reply),
/// errc::bad_reply (not a reply object, or an error code this version does not know), or
/// the master's own answer {"ok":false,"error":{"code":...,"message":...}}: its control
/// code (errc::not_found, errc::forbidden, ...; see is_remote) with the master's message.

/// Whether `error` is the master's answer (a control code), not a call that got no reply.
bool is_remote(const failure& error) noexcept;

/// One connection to a control socket. Not thread-safe; blocking calls, each bounded by its
/// timeout. After a timeout or a transport failure the connection is closed (a late reply
/// would otherwise answer the next request) and connect() must be called again; after a
/// `remote` error it stays usable.
class control_client {
 public:
  control_client();
  ~control_client();
  control_client(control_client&&) noexcept;
  control_client& operator=(control_client&&) noexcept;

  /// Connects to the Unix socket at `socket_path` (relative to the working directory),
  /// closing any previous connection. Errors: unreachable (with the errno), timeout.
  result<void> connect(const std::filesystem::path& socket_path, std::chrono::milliseconds timeout);

  bool is_open() const noexcept;
  void close() noexcept;

  /// Sends `request` as one line and waits for the reply; returns its `result`.
  /// Errors: remote (the master's error), timeout, disconnected, bad_reply; disconnected
  /// also when not connected.
  result<boost::json::value> call(const boost::json::object& request, std::chrono::milliseconds timeout);

  /// Sends `bytes` as they are (a newline is not added) and returns the next reply line,
  /// without its newline and unparsed. For tests of malformed requests. Errors: timeout,
  /// disconnected. If sending fails, a line the master sent before closing (`forbidden`)
  /// is still returned.
  result<std::string> call_raw(std::string_view bytes, std::chrono::milliseconds timeout);

  /// Reads the next reply line without sending anything. Errors: timeout, disconnected.
  result<std::string> read_line(std::chrono::milliseconds timeout);

  struct impl;

 private:
  std::unique_ptr<impl> impl_;
};

/// Interprets one reply line: the `result` of an ok reply, a `remote` error for an error
/// reply, bad_reply for anything else.
result<boost::json::value> parse_control_reply(std::string_view line);

/// Connects, calls once and closes: the timeout covers the whole exchange.
result<boost::json::value> control_call(const std::filesystem::path& socket_path, const boost::json::object& request,
                                        std::chrono::milliseconds timeout);

}  // namespace prefork
