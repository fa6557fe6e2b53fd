// What an HTTP handler returns: a status, header fields, a body, and whether the connection
// ends after it. The connection loop adds Server, Date, Content-Length and Connection.
#pragma once

#include <boost/asio/awaitable.hpp>

#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

namespace prefork::http {

/// The content types the helpers use. Setting one of these (or none) costs no allocation.
inline constexpr std::string_view text_plain = "text/plain; charset=utf-8";
inline constexpr std::string_view application_json = "application/json";
inline constexpr std::string_view application_octet_stream = "application/octet-stream";
inline constexpr std::string_view text_html = "text/html; charset=utf-8";

/// A body produced piece by piece: each call returns the next piece, or nullopt after
/// the last. A coroutine: it may wait (a timer, another socket) between pieces while the
/// worker serves other connections.
using body_stream = std::function<boost::asio::awaitable<std::optional<std::string>>()>;

class response {
 public:
  /// 200, text/plain, empty body.
  response() = default;
  /// Throws std::invalid_argument when `status` is not 200..599 (1xx are not final answers).
  explicit response(unsigned status, std::string body = {}, std::string_view content_type = text_plain);

  unsigned status() const noexcept { return status_; }
  response& set_status(unsigned status);

  const std::string& body() const noexcept { return body_; }
  std::string& body() noexcept { return body_; }
  response& set_body(std::string body) noexcept;

  /// Empty when the response has none (the header is then omitted).
  std::string_view content_type() const noexcept;
  /// Throws std::invalid_argument for a value with CR, LF or NUL.
  response& set_content_type(std::string_view type);

  /// Adds a header field, e.g. set_header("Cache-Control", "no-store"). `name` must be an
  /// HTTP token and `value` free of CR, LF and NUL; the fields the loop writes itself
  /// (Server, Date, Content-Length, Transfer-Encoding, Connection) may not be set; a
  /// Content-Type goes to set_content_type. Otherwise throws std::invalid_argument.
  response& set_header(std::string_view name, std::string_view value);
  /// The fields added with set_header, as written: "Name: value\r\n" each.
  std::string_view header_lines() const noexcept { return header_lines_; }

  /// Streams the body instead of body(): sent with `Transfer-Encoding: chunked` to an
  /// HTTP/1.1 client (the connection then goes on), or delimited by closing the connection
  /// to an HTTP/1.0 one. Each piece is written before the next is asked for, each write
  /// bounded by http.request_timeout; the time between pieces is the stream's own. If the
  /// stream throws, the error is logged and the connection is closed without the final
  /// chunk, so the client sees an incomplete body rather than a complete wrong one.
  /// A HEAD request or a 204/304 status never calls it.
  response& set_body_stream(body_stream next);
  const body_stream& stream() const noexcept { return stream_; }
  bool streams() const noexcept { return static_cast<bool>(stream_); }

  /// Ends the connection after this response (`Connection: close`).
  response& close_connection() noexcept;
  bool closes_connection() const noexcept { return close_; }

 private:
  enum class known_type : unsigned char { none, text, json, octet_stream, html, custom };

  unsigned status_ = 200;
  known_type type_ = known_type::text;
  bool close_ = false;
  std::string body_;
  std::string custom_type_;   // when type_ is custom
  std::string header_lines_;  // "Name: value\r\n"...
  body_stream stream_;
};

/// A text/plain response.
response text(unsigned status, std::string body);

/// Thrown by a handler (or by a helper it calls, such as parse_json) to answer with
/// `status` and `message` (text/plain, plus a newline) instead of its response. The worker
/// logs it at debug level only: it is an answer, not a failure. Any other exception is
/// answered 500 and logged as an error with the worker's id.
class http_error : public std::runtime_error {
 public:
  /// `status` must be 400..599 (std::invalid_argument otherwise).
  http_error(unsigned status, const std::string& message);
  unsigned status() const noexcept { return status_; }

 private:
  unsigned status_;
};

}  // namespace prefork::http
