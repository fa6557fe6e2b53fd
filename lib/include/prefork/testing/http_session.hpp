// A blocking HTTP/1.1 client for tests: one keep-alive connection to a listener in the
// bind syntax `status` reports, every call bounded by a timeout.
#pragma once

#include "prefork/connection.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/system/result.hpp>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace prefork::testing {

/// A response read by http_session or server::get. Header names keep their case.
struct http_response {
  unsigned status = 0;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;

  /// The first value of header `name` (compared case-insensitively); nullopt when absent.
  std::optional<std::string> header(std::string_view name) const;
};

/// One keep-alive HTTP/1.1 client connection to a listener, with its own io_context.
/// Blocking calls, each bounded by the session's timeout. Not thread-safe: use one session
/// per thread (server::session() makes more). Movable; closing it closes the connection.
class http_session {
 public:
  /// A session to `address` in bind syntax as `status` reports it: `unix:/abs/path`,
  /// `127.0.0.1:8080`, `[::1]:8080`. Connects lazily, on the first request.
  /// Throws std::invalid_argument when `address` is none of these.
  explicit http_session(std::string address, std::chrono::milliseconds timeout = std::chrono::seconds(10));
  ~http_session();
  http_session(http_session&&) noexcept;
  http_session& operator=(http_session&&) noexcept;

  /// Sends one request (`Host: localhost`, Content-Length when `body` is not empty) and
  /// reads the whole response. Connects when no connection is open. When a reused
  /// connection turns out to be closed by the server before any byte of the response
  /// (an idle keep-alive timeout, a worker that drained or died), an idempotent request
  /// (GET, HEAD, PUT, DELETE, OPTIONS) is sent once more on a new connection, as browsers
  /// do. A response saying `Connection: close` closes the connection after it.
  /// Errors (the connection is then closed): the connect or socket error,
  /// boost::asio::error::timed_out, or a Beast HTTP error (end_of_stream: closed before a
  /// response; partial_message: closed in the middle of one).
  boost::system::result<http_response> try_request(std::string_view method, std::string_view target,
                                                   std::string_view body = {});

  /// try_request("GET", target), throwing std::runtime_error (naming the address, the
  /// target and the error) on failure. Any status is a response, not an error.
  http_response get(std::string_view target);

  /// Closes the connection, if open; the next request connects again.
  void close() noexcept;

  const std::string& address() const noexcept;

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

/// A stream socket on `executor` connected (blocking, at most `timeout`) to `address` in
/// bind syntax (`unix:/abs/path`, `127.0.0.1:8080`, `[::1]:8080`), for tests that speak raw
/// bytes. Throws std::runtime_error when `address` is none of these,
/// boost::system::system_error when the connect fails (prefork::errc::backlog_full when
/// the listener's backlog stayed full until the timeout, timed_out when a TCP connect did
/// not finish in time; see prefork/connect.hpp).
socket_type connect(std::string_view address, const boost::asio::any_io_executor& executor,
                    std::chrono::milliseconds timeout = std::chrono::seconds(10));

}  // namespace prefork::testing
