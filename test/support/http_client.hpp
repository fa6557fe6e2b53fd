// Blocking HTTP/1.1 helpers for integration tests, over a Unix socket or TCP: raw bytes
// out, whole responses in (Beast's parser), every call bounded by a deadline.
#pragma once

#include <boost/system/error_code.hpp>
#include <boost/system/result.hpp>

#include <chrono>
#include <cstddef>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace prefork::test_support {

/// Where a test connects: a Unix socket path or a numeric TCP host and port.
struct endpoint {
  enum class kind { unix_socket, tcp };
  kind type = kind::unix_socket;
  std::string path;  // unix_socket
  std::string host;  // tcp, numeric ("127.0.0.1", "::1")
  unsigned short port = 0;

  static endpoint unix_socket(const std::filesystem::path& path);
  static endpoint tcp(std::string host, unsigned short port);

  /// Parses bind syntax as preforkd logs it: `unix:/abs/path`, `127.0.0.1:43123`,
  /// `[::1]:43123`. nullopt when the text is none of these.
  static std::optional<endpoint> parse(std::string_view bind_syntax);

  /// Back to bind syntax, for messages.
  std::string to_string() const;
};

/// A parsed response. Header names keep their case; header() looks up case-insensitively.
struct raw_response {
  unsigned status = 0;
  unsigned version = 11;  // 10 or 11
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  bool keep_alive = false;  // what the response says about the connection

  /// The first value of header `name` (case-insensitive), nullopt when absent.
  std::optional<std::string> header(std::string_view name) const;
};

/// Whether a response carries a body: HEAD responses have a Content-Length but no body.
enum class response_body { expected, none_for_head };

/// Whether a request asks to keep the connection open.
enum class connection_header { keep_alive, close };

/// The bytes of a minimal HTTP/1.1 request with `Host` and, for `close`, `Connection: close`.
std::string make_request(std::string_view method, std::string_view target,
                         connection_header connection = connection_header::keep_alive);

/// One client connection with its own io_context; not thread-safe, movable.
/// Errors are values: boost::asio::error::timed_out when a deadline passes (the connection
/// is then closed), a socket error, or a Beast HTTP error such as end_of_stream or
/// partial_message when the peer closes before a whole response.
class http_connection {
 public:
  http_connection();
  ~http_connection();
  http_connection(http_connection&&) noexcept;
  http_connection& operator=(http_connection&&) noexcept;

  /// Connects (closing any previous connection first).
  boost::system::error_code connect(const endpoint& where, std::chrono::milliseconds timeout);

  /// Writes all of `bytes`.
  boost::system::error_code send(std::string_view bytes, std::chrono::milliseconds timeout);

  /// Reads one whole response; bytes after it stay buffered for the next call (pipelining).
  boost::system::result<raw_response> read_response(std::chrono::milliseconds timeout,
                                                    response_body body = response_body::expected);

  /// send(make_request(...)) then read_response(), within one deadline.
  boost::system::result<raw_response> request(std::string_view method, std::string_view target,
                                              std::chrono::milliseconds timeout,
                                              connection_header connection = connection_header::keep_alive);

  /// Waits for the peer to close: success on EOF or reset, timed_out when it stays open,
  /// boost::system::errc::bad_message when data arrives instead.
  boost::system::error_code wait_closed(std::chrono::milliseconds timeout);

  bool is_open() const noexcept;
  void close() noexcept;

  /// The socket's descriptor (-1 when closed), e.g. to find its inode.
  int native_handle() const noexcept;

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

/// Connects, sends one request with `Connection: close`, reads the response.
boost::system::result<raw_response> http_request(const endpoint& where, std::string_view method,
                                                 std::string_view target, std::chrono::milliseconds timeout);

/// http_request(where, "GET", target, timeout).
boost::system::result<raw_response> http_get(const endpoint& where, std::string_view target,
                                             std::chrono::milliseconds timeout);

}  // namespace prefork::test_support
