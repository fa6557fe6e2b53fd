// What an HTTP handler returns: a status, header fields, a body, and whether the connection
// ends after it. The connection loop adds Server, Date, Content-Length and Connection.
#pragma once

#include <stdexcept>
#include <string>
#include <string_view>

namespace prefork::http {

/// The content types the helpers use. Setting one of these (or none) costs no allocation.
inline constexpr std::string_view text_plain = "text/plain; charset=utf-8";
inline constexpr std::string_view application_json = "application/json";
inline constexpr std::string_view application_octet_stream = "application/octet-stream";
inline constexpr std::string_view text_html = "text/html; charset=utf-8";

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
