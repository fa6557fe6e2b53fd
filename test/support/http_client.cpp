#include "support/http_client.hpp"

#include "prefork/socket_connect.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/generic/stream_protocol.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <optional>

namespace prefork::test_support {

namespace asio = boost::asio;
namespace http = boost::beast::http;
using boost::system::error_code;
using clock_type = std::chrono::steady_clock;

namespace {

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
         });
}

std::optional<unsigned short> parse_port(std::string_view text) {
  unsigned value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc{} || end != text.data() + text.size() || value > 65535) return std::nullopt;
  return static_cast<unsigned short>(value);
}

std::chrono::milliseconds remaining(clock_type::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock_type::now());
  return std::max(left, std::chrono::milliseconds(0));
}

}  // namespace

endpoint endpoint::unix_socket(const std::filesystem::path& path) {
  endpoint result;
  result.type = kind::unix_socket;
  result.path = path.string();
  return result;
}

endpoint endpoint::tcp(std::string host, unsigned short port) {
  endpoint result;
  result.type = kind::tcp;
  result.host = std::move(host);
  result.port = port;
  return result;
}

std::optional<endpoint> endpoint::parse(std::string_view text) {
  if (text.starts_with("unix:")) {
    if (text.size() == 5) return std::nullopt;
    return unix_socket(std::string(text.substr(5)));
  }
  if (text.starts_with("[")) {
    auto close = text.find("]:");
    if (close == std::string_view::npos) return std::nullopt;
    auto port = parse_port(text.substr(close + 2));
    if (!port) return std::nullopt;
    return tcp(std::string(text.substr(1, close - 1)), *port);
  }
  auto colon = text.rfind(':');
  if (colon == std::string_view::npos || colon == 0) return std::nullopt;
  auto port = parse_port(text.substr(colon + 1));
  if (!port) return std::nullopt;
  return tcp(std::string(text.substr(0, colon)), *port);
}

std::string endpoint::to_string() const {
  if (type == kind::unix_socket) return "unix:" + path;
  if (host.find(':') != std::string::npos) return "[" + host + "]:" + std::to_string(port);
  return host + ":" + std::to_string(port);
}

std::optional<std::string> raw_response::header(std::string_view name) const {
  for (const auto& [key, value] : headers) {
    if (iequals(key, name)) return value;
  }
  return std::nullopt;
}

std::string make_request(std::string_view method, std::string_view target, connection_header connection) {
  std::string text;
  text.append(method).append(" ").append(target).append(" HTTP/1.1\r\nHost: localhost\r\n");
  if (connection == connection_header::close) text.append("Connection: close\r\n");
  text.append("\r\n");
  return text;
}

struct http_connection::impl {
  asio::io_context io;
  asio::generic::stream_protocol::socket socket{io};
  boost::beast::flat_buffer buffer;

  // Runs an operation started by `start(handler)` until it completes or `timeout` passes;
  // on timeout the socket is closed (the connection is unusable: a partial response may
  // have been consumed) and the aborted handler is drained before returning.
  template <typename Start>
  error_code run(std::chrono::milliseconds timeout, Start start) {
    std::optional<error_code> outcome;
    start([&outcome](error_code ec, std::size_t = 0) { outcome = ec; });
    io.restart();
    io.run_for(timeout);
    if (outcome) return *outcome;
    error_code ignored;
    socket.close(ignored);
    io.restart();
    io.run();
    return asio::error::timed_out;
  }
};

http_connection::http_connection() : impl_(std::make_unique<impl>()) {}
http_connection::~http_connection() = default;
http_connection::http_connection(http_connection&&) noexcept = default;
http_connection& http_connection::operator=(http_connection&&) noexcept = default;

error_code http_connection::connect(const endpoint& where, std::chrono::milliseconds timeout) {
  close();
  asio::generic::stream_protocol::endpoint target;
  if (where.type == endpoint::kind::unix_socket) {
    target = asio::local::stream_protocol::endpoint(where.path);
  } else {
    error_code ec;
    auto address = asio::ip::make_address(where.host, ec);
    if (ec) return ec;
    target = asio::ip::tcp::endpoint(address, where.port);
  }
  error_code ec = prefork::connect_until(impl_->socket, target, std::chrono::steady_clock::now() + timeout);
  if (ec) close();
  return ec;
}

error_code http_connection::send(std::string_view bytes, std::chrono::milliseconds timeout) {
  if (!is_open()) return asio::error::not_connected;
  return impl_->run(timeout, [&](auto handler) {
    asio::async_write(impl_->socket, asio::buffer(bytes.data(), bytes.size()), handler);
  });
}

boost::system::result<raw_response> http_connection::read_response(std::chrono::milliseconds timeout,
                                                                   response_body body) {
  if (!is_open()) return error_code(asio::error::not_connected);
  http::response_parser<http::string_body> parser;
  parser.header_limit(64 * 1024);
  parser.body_limit(16 * 1024 * 1024);
  if (body == response_body::none_for_head) parser.skip(true);
  error_code ec =
      impl_->run(timeout, [&](auto handler) { http::async_read(impl_->socket, impl_->buffer, parser, handler); });
  if (ec) return ec;
  auto& message = parser.get();
  raw_response response;
  response.status = message.result_int();
  response.version = message.version();
  for (const auto& field : message) {
    response.headers.emplace_back(std::string(field.name_string()), std::string(field.value()));
  }
  response.keep_alive = message.keep_alive();
  response.body = std::move(message.body());
  return response;
}

boost::system::result<raw_response> http_connection::request(std::string_view method, std::string_view target,
                                                             std::chrono::milliseconds timeout,
                                                             connection_header connection) {
  auto deadline = clock_type::now() + timeout;
  if (auto ec = send(make_request(method, target, connection), timeout)) return ec;
  auto kind = method == "HEAD" ? response_body::none_for_head : response_body::expected;
  return read_response(remaining(deadline), kind);
}

error_code http_connection::wait_closed(std::chrono::milliseconds timeout) {
  if (!is_open()) return asio::error::not_connected;
  if (impl_->buffer.size() != 0) return boost::system::errc::make_error_code(boost::system::errc::bad_message);
  std::array<char, 256> scratch{};
  std::optional<error_code> outcome;
  impl_->socket.async_read_some(asio::buffer(scratch), [&](error_code ec, std::size_t) { outcome = ec; });
  impl_->io.restart();
  impl_->io.run_for(timeout);
  if (!outcome) {
    close();
    impl_->io.restart();
    impl_->io.run();
    return asio::error::timed_out;
  }
  if (*outcome == asio::error::eof || *outcome == asio::error::connection_reset) {
    close();
    return {};
  }
  if (*outcome) return *outcome;
  return boost::system::errc::make_error_code(boost::system::errc::bad_message);
}

bool http_connection::is_open() const noexcept { return impl_ && impl_->socket.is_open(); }

void http_connection::close() noexcept {
  if (!impl_) return;
  error_code ignored;
  impl_->socket.close(ignored);
  impl_->buffer.clear();
}

int http_connection::native_handle() const noexcept {
  if (!is_open()) return -1;
  return impl_->socket.native_handle();
}

boost::system::result<raw_response> http_request(const endpoint& where, std::string_view method,
                                                 std::string_view target, std::chrono::milliseconds timeout) {
  auto deadline = clock_type::now() + timeout;
  http_connection connection;
  if (auto ec = connection.connect(where, timeout)) return ec;
  return connection.request(method, target, remaining(deadline), connection_header::close);
}

boost::system::result<raw_response> http_get(const endpoint& where, std::string_view target,
                                             std::chrono::milliseconds timeout) {
  return http_request(where, "GET", target, timeout);
}

}  // namespace prefork::test_support
