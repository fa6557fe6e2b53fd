#include "prefork/testing/http_session.hpp"

#include "prefork/socket_connect.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/generic/stream_protocol.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/system/system_error.hpp>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <stdexcept>

namespace prefork::testing {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
using steady = std::chrono::steady_clock;
using namespace std::chrono_literals;

namespace {

bool equal_ignoring_case(std::string_view a, std::string_view b) {
  return std::equal(a.begin(), a.end(), b.begin(), b.end(), [](char x, char y) {
    return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
  });
}

// --- addresses ----------------------------------------------------------------------------

// A bind-syntax address as an endpoint any stream socket can connect to.
std::optional<asio::generic::stream_protocol::endpoint> parse_endpoint(std::string_view address) {
  if (address.starts_with("unix:")) {
    auto path = address.substr(5);
    if (path.empty()) return std::nullopt;
    asio::local::stream_protocol::endpoint local{std::string(path)};
    return asio::generic::stream_protocol::endpoint(local.data(), local.size());
  }
  std::string_view host;
  std::string_view port_text;
  if (address.starts_with("[")) {
    auto end = address.find("]:");
    if (end == std::string_view::npos) return std::nullopt;
    host = address.substr(1, end - 1);
    port_text = address.substr(end + 2);
  } else {
    auto colon = address.rfind(':');
    if (colon == std::string_view::npos) return std::nullopt;
    host = address.substr(0, colon);
    port_text = address.substr(colon + 1);
  }
  unsigned port = 0;
  auto [end, error] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (error != std::errc{} || end != port_text.data() + port_text.size() || port == 0 || port > 65535)
    return std::nullopt;
  boost::system::error_code ec;
  auto ip = asio::ip::make_address(std::string(host), ec);
  if (ec) return std::nullopt;
  asio::ip::tcp::endpoint tcp(ip, static_cast<unsigned short>(port));
  return asio::generic::stream_protocol::endpoint(tcp.data(), tcp.size());
}

}  // namespace

std::optional<std::string> http_response::header(std::string_view name) const {
  for (const auto& [key, value] : headers)
    if (equal_ignoring_case(key, name)) return value;
  return std::nullopt;
}

socket_type connect(std::string_view address, const asio::any_io_executor& executor,
                    std::chrono::milliseconds timeout) {
  auto endpoint = parse_endpoint(address);
  if (!endpoint) throw std::runtime_error("cannot connect to \"" + std::string(address) + "\": not an address");
  socket_type socket(executor);
  auto ec = connect_until(socket, *endpoint, steady::now() + timeout);
  if (ec) throw boost::system::system_error(ec, "connect to " + std::string(address));
  return socket;
}

// --- http_session -------------------------------------------------------------------------

// Blocking calls with deadlines in the manner of Asio's blocking_*_client_timeout examples:
// start one async operation, run the private io_context until it completes or the deadline
// passes, and on timeout close the socket and drain the aborted handler.
struct http_session::impl {
  std::string address;
  asio::generic::stream_protocol::endpoint endpoint;
  std::chrono::milliseconds timeout;
  asio::io_context io;
  asio::generic::stream_protocol::socket socket{io};
  beast::flat_buffer buffer;
  bool reused = false;  // a response was read on this connection

  bool run_until(const bool& done, steady::time_point deadline) {
    io.restart();
    auto now = steady::now();
    if (now < deadline) io.run_for(deadline - now);
    if (done) return true;
    close();
    io.restart();
    io.run();  // completes the aborted operation so that nothing refers to this frame
    return false;
  }

  void close() noexcept {
    boost::system::error_code ignored;
    socket.close(ignored);
    buffer.clear();
    reused = false;
  }

  boost::system::error_code connect(steady::time_point deadline) {
    close();
    return connect_until(socket, endpoint, deadline);
  }

  // One request and response on the open connection. `got_some` says whether any byte of
  // a response arrived.
  boost::system::result<http_response> exchange(const std::string& request, bool head, steady::time_point deadline,
                                                bool& got_some) {
    got_some = false;
    bool done = false;
    boost::system::error_code result;
    asio::async_write(socket, asio::buffer(request), [&](boost::system::error_code ec, std::size_t) {
      result = ec;
      done = true;
    });
    if (!run_until(done, deadline)) return boost::system::error_code(asio::error::timed_out);
    if (result) {
      close();
      return result;
    }
    http::response_parser<http::string_body> parser;
    parser.header_limit(64 * 1024);
    parser.body_limit(std::uint64_t{256} * 1024 * 1024);
    if (head) parser.skip(true);
    done = false;
    http::async_read(socket, buffer, parser, [&](boost::system::error_code ec, std::size_t) {
      result = ec;
      done = true;
    });
    if (!run_until(done, deadline)) {
      got_some = parser.got_some();
      return boost::system::error_code(asio::error::timed_out);
    }
    got_some = parser.got_some();
    if (result) {
      close();
      return result;
    }
    auto message = parser.release();
    http_response response;
    response.status = message.result_int();
    for (const auto& field : message) response.headers.emplace_back(field.name_string(), field.value());
    response.body = std::move(message.body());
    if (message.keep_alive())
      reused = true;
    else
      close();
    return response;
  }
};

http_session::http_session(std::string address, std::chrono::milliseconds timeout) : impl_(std::make_unique<impl>()) {
  auto endpoint = parse_endpoint(address);
  if (!endpoint) throw std::invalid_argument("not an address in bind syntax: \"" + address + "\"");
  impl_->address = std::move(address);
  impl_->endpoint = *endpoint;
  impl_->timeout = timeout;
}

http_session::~http_session() = default;
http_session::http_session(http_session&&) noexcept = default;
http_session& http_session::operator=(http_session&&) noexcept = default;

boost::system::result<http_response> http_session::try_request(std::string_view method, std::string_view target,
                                                               std::string_view body) {
  std::string request;
  request.reserve(64 + target.size() + body.size());
  request.append(method).append(" ").append(target).append(" HTTP/1.1\r\nHost: localhost\r\n");
  if (!body.empty() || method == "POST" || method == "PUT")
    request.append("Content-Length: ").append(std::to_string(body.size())).append("\r\n");
  request.append("\r\n").append(body);
  const bool head = method == "HEAD";
  const bool idempotent = method == "GET" || head || method == "PUT" || method == "DELETE" || method == "OPTIONS";
  const auto deadline = steady::now() + impl_->timeout;
  for (int attempt = 0;; ++attempt) {
    const bool reused = impl_->socket.is_open() && impl_->reused;
    if (!impl_->socket.is_open()) {
      if (auto ec = impl_->connect(deadline)) return ec;
    }
    bool got_some = false;
    auto response = impl_->exchange(request, head, deadline, got_some);
    if (response) return response;
    const auto& ec = response.error();
    // The server closed a kept-alive connection before this request reached a handler.
    const bool closed_idle = ec == http::error::end_of_stream || ec == asio::error::eof ||
                             ec == asio::error::connection_reset || ec == asio::error::broken_pipe;
    if (attempt == 0 && reused && idempotent && !got_some && closed_idle) {
      impl_->close();
      continue;
    }
    return ec;
  }
}

http_response http_session::get(std::string_view target) {
  auto response = try_request("GET", target);
  if (!response)
    throw std::runtime_error("GET " + std::string(target) + " on " + impl_->address + ": " +
                             response.error().message());
  return std::move(*response);
}

void http_session::close() noexcept { impl_->close(); }

const std::string& http_session::address() const noexcept { return impl_->address; }

// --- server -------------------------------------------------------------------------------

}  // namespace prefork::testing
