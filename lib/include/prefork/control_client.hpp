// A small synchronous client of the control socket (SPEC section 3), used by preforkctl,
// the test harness and scripts written in C++: connect, send one request line, read one
// reply line, each step under a deadline. Failures are values, never exceptions.
#pragma once

#include <boost/assert/source_location.hpp>
#include <boost/json/object.hpp>
#include <boost/json/value.hpp>
#include <boost/system/error_code.hpp>
#include <boost/system/result.hpp>

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>

namespace prefork {

/// Why a control call failed.
enum class control_failure {
  unreachable,   // cannot connect: no socket file, nobody accepts (refused), no permission, path too long
  timeout,       // a deadline passed before the step finished
  disconnected,  // the connection failed or was closed before a whole reply arrived
  bad_reply,     // the reply is not a reply object ({"ok":true,"result":...} or {"ok":false,"error":...})
  remote,        // the master answered {"ok":false,"error":{"code":...,"message":...}}
};

struct control_client_error {
  control_failure failure = control_failure::disconnected;
  std::string code;                  // remote: the master's error code (not_found, forbidden, ...)
  std::string message;               // for people; remote: the master's message
  boost::system::error_code system;  // unreachable / disconnected: the system error, if any
};

/// Lets result<T, control_client_error>::value() throw std::runtime_error(message).
[[noreturn]] void throw_exception_from_error(const control_client_error& error, const boost::source_location& location);

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
  boost::system::result<void, control_client_error> connect(const std::filesystem::path& socket_path,
                                                            std::chrono::milliseconds timeout);

  bool is_open() const noexcept;
  void close() noexcept;

  /// Sends `request` as one line and waits for the reply; returns its `result`.
  /// Errors: remote (the master's error), timeout, disconnected, bad_reply; disconnected
  /// also when not connected.
  boost::system::result<boost::json::value, control_client_error> call(const boost::json::object& request,
                                                                       std::chrono::milliseconds timeout);

  /// Sends `bytes` as they are (a newline is not added) and returns the next reply line,
  /// without its newline and unparsed. For tests of malformed requests. Errors: timeout,
  /// disconnected. If sending fails, a line the master sent before closing (`forbidden`)
  /// is still returned.
  boost::system::result<std::string, control_client_error> call_raw(std::string_view bytes,
                                                                    std::chrono::milliseconds timeout);

  /// Reads the next reply line without sending anything. Errors: timeout, disconnected.
  boost::system::result<std::string, control_client_error> read_line(std::chrono::milliseconds timeout);

  struct impl;

 private:
  std::unique_ptr<impl> impl_;
};

/// Interprets one reply line: the `result` of an ok reply, a `remote` error for an error
/// reply, bad_reply for anything else.
boost::system::result<boost::json::value, control_client_error> parse_control_reply(std::string_view line);

/// Connects, calls once and closes: the timeout covers the whole exchange.
boost::system::result<boost::json::value, control_client_error> control_call(const std::filesystem::path& socket_path,
                                                                             const boost::json::object& request,
                                                                             std::chrono::milliseconds timeout);

}  // namespace prefork
