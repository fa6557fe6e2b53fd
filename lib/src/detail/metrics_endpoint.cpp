// The metrics endpoint's HTTP exchange, on Beast's request parser (head only).
#include "prefork/detail/metrics_endpoint.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/verb.hpp>

#include <algorithm>
#include <array>
#include <cstddef>
#include <string_view>
#include <utility>
#include <variant>

namespace prefork::detail {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using namespace asio::experimental::awaitable_operators;
using boost::system::error_code;

constexpr std::uint32_t header_limit = 8 * 1024;
constexpr std::chrono::seconds linger_limit{1};

std::string response(std::string_view status_line, std::string_view extra_headers, std::string_view content_type,
                     std::string_view body, bool head_only) {
  std::string out;
  out.reserve(160 + (head_only ? 0 : body.size()));
  out += "HTTP/1.1 ";
  out += status_line;
  out += "\r\nContent-Type: ";
  out += content_type;
  out += "\r\nContent-Length: ";
  out += std::to_string(body.size());
  out += "\r\n";
  out += extra_headers;
  out += "Connection: close\r\n\r\n";
  if (!head_only) out += body;
  return out;
}

std::string plain_response(std::string_view status_line, std::string_view body, std::string_view extra_headers = {}) {
  return response(status_line, extra_headers, "text/plain; charset=utf-8", body, false);
}

bool is_parse_error(const error_code& ec) {
  // Beast reports a malformed message in its own category; end_of_stream (EOF before any
  // byte) and partial_message (EOF mid-head) mean the client went away.
  static const error_code sample = http::error::bad_method;
  return ec.category() == sample.category() && ec != http::error::end_of_stream && ec != http::error::partial_message;
}

std::string answer(const http::request_parser<http::empty_body>& parser, const std::function<std::string()>& render) {
  const auto& request = parser.get();
  const bool head = request.method() == http::verb::head;
  if (request.method() != http::verb::get && !head) {
    return plain_response("405 Method Not Allowed", "method not allowed\n", "Allow: GET, HEAD\r\n");
  }
  std::string_view target(request.target().data(), request.target().size());
  target = target.substr(0, target.find('?'));
  if (target != "/metrics") return plain_response("404 Not Found", "not found\n");
  const std::string body = render();
  return response("200 OK", {}, metrics_content_type, body, head);
}

}  // namespace

asio::awaitable<void> serve_metrics_connection(socket_type socket, std::function<std::string()> render,
                                               std::chrono::milliseconds timeout) {
  asio::steady_timer deadline(socket.get_executor());
  deadline.expires_after(timeout);

  beast::flat_buffer buffer;
  http::request_parser<http::empty_body> parser;
  parser.header_limit(header_limit);
  auto read = co_await (http::async_read_header(socket, buffer, parser, asio::as_tuple(asio::use_awaitable)) ||
                        deadline.async_wait(asio::as_tuple(asio::use_awaitable)));
  if (read.index() == 1) co_return;  // no complete head in time: close without an answer
  const auto [read_error, read_bytes] = std::get<0>(read);

  std::string reply;
  if (!read_error) {
    reply = answer(parser, render);
  } else if (read_error == http::error::header_limit) {
    reply = plain_response("431 Request Header Fields Too Large", "request header fields too large\n");
  } else if (is_parse_error(read_error)) {
    reply = plain_response("400 Bad Request", "bad request\n");
  } else {
    co_return;  // the client went away or the socket failed
  }

  auto written = co_await (asio::async_write(socket, asio::buffer(reply), asio::as_tuple(asio::use_awaitable)) ||
                           deadline.async_wait(asio::as_tuple(asio::use_awaitable)));
  if (written.index() == 1 || std::get<0>(std::get<0>(written))) co_return;

  // Closing with unread bytes (a body, a pipelined request) would send a reset that can
  // destroy the answer in flight: say we are done, then discard input until the client
  // closes, or the linger time passes.
  error_code ignored;
  socket.shutdown(socket_type::shutdown_send, ignored);
  deadline.expires_at(std::min(deadline.expiry(), asio::steady_timer::clock_type::now() + linger_limit));
  std::array<char, 4096> discard{};
  while (true) {
    auto drained = co_await (socket.async_read_some(asio::buffer(discard), asio::as_tuple(asio::use_awaitable)) ||
                             deadline.async_wait(asio::as_tuple(asio::use_awaitable)));
    if (drained.index() == 1 || std::get<0>(std::get<0>(drained))) break;
  }
  socket.close(ignored);
}

}  // namespace prefork::detail
