// A blocking HTTP/1.1 client for tests: one keep-alive connection to a listener in the
// bind syntax `status` reports, every call bounded by a timeout.
#pragma once

#include "prefork/connection.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/json/value.hpp>
#include <boost/system/result.hpp>

#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace prefork::testing {

/// Header fields in order, as (name, value) pairs; names keep their case and may repeat.
using http_headers = std::vector<std::pair<std::string, std::string>>;

/// A request for http_session::try_request. An aggregate: `{.method = "PUT", .target =
/// "/x", .headers = {{"If-Match", "\"v2\""}}, .body = "..."}`.
struct http_request {
  /// The method, sent as given (GET, POST, PATCH, a made-up token...).
  std::string method = "GET";
  /// The request target as sent on the request line: `/path?query`.
  std::string target = "/";
  /// Fields sent after the session's own, in this order. The session sends `Host:
  /// localhost` unless a Host is here, and `Content-Length` unless a Content-Length or
  /// Transfer-Encoding is here (when the body is not empty, or the method is POST, PUT or
  /// PATCH). `Expect: 100-continue` with a body makes the session wait for the 100 before
  /// sending the body (see http_session::try_request).
  http_headers headers{};
  /// The body, sent as given after the header.
  std::string body{};
};

/// A response read by http_session or server::get. Header names keep their case.
struct http_response {
  /// The status code of the final response (200, 404...).
  unsigned status = 0;
  /// Its header fields as received, in order.
  http_headers headers{};
  /// Its body (empty for HEAD, 204, 304).
  std::string body{};
  /// True when this response came on a connection that had already carried an earlier
  /// response (a kept-alive connection); false on a connection opened for this request,
  /// also when a stale kept-alive connection was replaced by a new one (the retry of an
  /// idempotent request).
  bool reused = false;
  /// The statuses of the interim (1xx) responses that came before this one, in order:
  /// `{100}` after `Expect: 100-continue` when the server asked for the body.
  std::vector<unsigned> interim{};

  /// The first value of header `name` (compared case-insensitively); nullopt when absent.
  std::optional<std::string> header(std::string_view name) const;
  /// The body parsed as JSON (whatever the Content-Type). Throws std::runtime_error naming
  /// the status, the parse error and the body (its first 200 bytes) when it is not JSON.
  boost::json::value json() const;
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

  /// Sends `request` and reads the whole response, skipping interim (1xx) responses
  /// (listed in http_response::interim; 101 is final). Connects when no connection is
  /// open. When a reused connection turns out to be closed by the server before any byte
  /// of the response (an idle keep-alive timeout, a worker that drained or died), an
  /// idempotent request (GET, HEAD, PUT, DELETE, OPTIONS, TRACE) is sent once more on a
  /// new connection, as browsers do: connections() counts it, and the response is not
  /// `reused`. Any other method (POST, PATCH...) is never sent twice: that failure is
  /// returned. With `Expect: 100-continue` and a body, the header goes first and the body
  /// follows the server's 100, or 1 s of silence (as curl does); a final response that
  /// comes instead is returned, the body unsent, and the connection closed. A response
  /// saying `Connection: close` closes the connection after it. The whole call, retry
  /// included, is bounded by the session's timeout.
  /// Errors (the connection is then closed): the connect or socket error,
  /// boost::asio::error::timed_out, or a Beast HTTP error (end_of_stream: closed before a
  /// response; partial_message: closed in the middle of one).
  /// Throws std::invalid_argument, sending nothing, when the method is not a token, the
  /// target is empty or holds a space or control character, a header name is not a
  /// token, or a header value holds CR, LF or NUL.
  boost::system::result<http_response> try_request(const http_request& request);
  /// try_request({method, target, {}, body}).
  boost::system::result<http_response> try_request(std::string_view method, std::string_view target,
                                                   std::string_view body = {});

  /// try_request(request), throwing std::runtime_error (naming the method, the target,
  /// the address and the error) on failure. Any status is a response, not an error.
  http_response request(const http_request& request);
  /// request({method, target, headers, body}).
  http_response request(std::string_view method, std::string_view target, std::string_view body = {},
                        const http_headers& headers = {});
  /// request({"GET", target, headers}).
  http_response get(std::string_view target, const http_headers& headers = {});
  /// request({"POST", target, headers, body}) with `Content-Type: content_type` first
  /// (none when it is empty or `headers` has a Content-Type).
  http_response post(std::string_view target, std::string_view body, std::string_view content_type = "text/plain",
                     const http_headers& headers = {});
  /// post(target, serialize(body), "application/json", headers).
  http_response post_json(std::string_view target, const boost::json::value& body, const http_headers& headers = {});

  /// How many connections this session opened so far (successful connects): stays 1 while
  /// one kept-alive connection carries every request, also across a reload that migrates
  /// it to a new worker; grows by one on each reconnect (after a `Connection: close`, a
  /// failure, close(), or the retry of an idempotent request on a stale connection).
  std::size_t connections() const noexcept;

  /// Closes the connection, if open; the next request connects again.
  void close() noexcept;

  /// The address the session connects to, as given.
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
