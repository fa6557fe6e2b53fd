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
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/system/system_error.hpp>

#include <algorithm>
#include <array>
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

// --- requests -----------------------------------------------------------------------------

// How long a body announced with `Expect: 100-continue` waits for the 100 before it is sent
// anyway: curl's default, for servers that ignore the expectation.
constexpr auto continue_wait = 1s;

// RFC 9110 5.6.2: tchar.
bool is_token(std::string_view text) {
  constexpr std::string_view symbols = "!#$%&'*+-.^_`|~";
  return !text.empty() && std::all_of(text.begin(), text.end(), [&](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || symbols.find(c) != std::string_view::npos;
  });
}

bool is_control_or_space(char c) {
  const auto byte = static_cast<unsigned char>(c);
  return byte <= 0x20 || byte == 0x7f;
}

// `text` for a message: control characters as \r, \n, \xNN; at most `limit` bytes of it.
std::string printable(std::string_view text, std::size_t limit = 200) {
  std::string out;
  for (char c : text.substr(0, limit)) {
    const auto byte = static_cast<unsigned char>(c);
    if (c == '\r') {
      out += "\\r";
    } else if (c == '\n') {
      out += "\\n";
    } else if (byte < 0x20 || byte == 0x7f) {
      constexpr char digits[] = "0123456789abcdef";
      out.append("\\x").append(1, digits[byte >> 4]).append(1, digits[byte & 0xf]);
    } else {
      out += c;
    }
  }
  if (text.size() > limit) out += "... (" + std::to_string(text.size()) + " bytes)";
  return out;
}

bool has_header(const http_headers& headers, std::string_view name) {
  return std::any_of(headers.begin(), headers.end(),
                     [&](const auto& field) { return equal_ignoring_case(field.first, name); });
}

// Throws std::invalid_argument for what would not be one well-formed request on the wire.
void check_request(const http_request& request) {
  if (!is_token(request.method))
    throw std::invalid_argument("HTTP method \"" + printable(request.method) + "\" is not a token");
  if (request.target.empty() || std::any_of(request.target.begin(), request.target.end(), is_control_or_space))
    throw std::invalid_argument("HTTP target \"" + printable(request.target) +
                                "\" is empty or holds a space or control character");
  for (const auto& [name, value] : request.headers) {
    if (!is_token(name)) throw std::invalid_argument("header name \"" + printable(name) + "\" is not a token");
    if (value.find_first_of(std::string_view("\r\n\0", 3)) != std::string::npos)
      throw std::invalid_argument("header " + name + ": the value \"" + printable(value) + "\" holds CR, LF or NUL");
  }
}

bool idempotent(std::string_view method) {
  return method == "GET" || method == "HEAD" || method == "PUT" || method == "DELETE" || method == "OPTIONS" ||
         method == "TRACE";
}

// A request as it goes on the wire: the header, then the body (at once, or after a 100).
struct outgoing {
  std::string head;
  std::string_view body;
  bool head_method = false;  // the response has no body
  bool idempotent = false;   // may be sent twice
  bool await_continue = false;
};

std::string serialize_head(const http_request& request) {
  std::string head;
  head.reserve(64 + request.target.size());
  head.append(request.method).append(" ").append(request.target).append(" HTTP/1.1\r\n");
  if (!has_header(request.headers, "Host")) head.append("Host: localhost\r\n");
  const bool sized = has_header(request.headers, "Content-Length") || has_header(request.headers, "Transfer-Encoding");
  const bool carries_body =
      !request.body.empty() || request.method == "POST" || request.method == "PUT" || request.method == "PATCH";
  if (!sized && carries_body)
    head.append("Content-Length: ").append(std::to_string(request.body.size())).append("\r\n");
  for (const auto& [name, value] : request.headers) head.append(name).append(": ").append(value).append("\r\n");
  head.append("\r\n");
  return head;
}

outgoing prepare(const http_request& request) {
  outgoing out;
  out.head = serialize_head(request);
  out.body = request.body;
  out.head_method = request.method == "HEAD";
  out.idempotent = idempotent(request.method);
  out.await_continue =
      !request.body.empty() && std::any_of(request.headers.begin(), request.headers.end(), [](const auto& field) {
        return equal_ignoring_case(field.first, "Expect") && equal_ignoring_case(field.second, "100-continue");
      });
  return out;
}

// A 1xx response the final one follows (101 Switching Protocols is final).
bool is_interim(unsigned status) { return status >= 100 && status < 200 && status != 101; }

// The server closed a kept-alive connection before the request reached a handler.
bool closed_by_peer(const boost::system::error_code& ec) {
  return ec == http::error::end_of_stream || ec == asio::error::eof || ec == asio::error::connection_reset ||
         ec == asio::error::broken_pipe;
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

boost::json::value http_response::json() const {
  boost::system::error_code ec;
  auto value = boost::json::parse(body, ec);
  if (ec) {
    throw std::runtime_error("response " + std::to_string(status) + " is not JSON (" + ec.message() +
                             "): " + (body.empty() ? std::string("empty body") : "body \"" + printable(body) + "\""));
  }
  return value;
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
// passes, and on timeout close the socket (or cancel the operation) and drain the aborted
// handler.
struct http_session::impl {
  using message = http::response<http::string_body>;
  enum class on_timeout { close, cancel };

  std::string address;
  asio::generic::stream_protocol::endpoint endpoint;
  std::chrono::milliseconds timeout;
  asio::io_context io;
  asio::generic::stream_protocol::socket socket{io};
  beast::flat_buffer buffer;
  bool reused = false;          // a response was read on this connection
  std::size_t connections = 0;  // opened so far

  bool run_until(const bool& done, steady::time_point deadline, on_timeout action = on_timeout::close) {
    io.restart();
    auto now = steady::now();
    if (now < deadline) io.run_for(deadline - now);
    if (done) return true;
    if (action == on_timeout::close) {
      close();
    } else {
      boost::system::error_code ignored;
      socket.cancel(ignored);
    }
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
    auto ec = connect_until(socket, endpoint, deadline);
    if (!ec) ++connections;
    return ec;
  }

  // Writes `first` then `second`; a failure closes the connection.
  boost::system::error_code write(std::string_view first, std::string_view second, steady::time_point deadline) {
    bool done = false;
    boost::system::error_code result;
    std::array<asio::const_buffer, 2> buffers{asio::buffer(first), asio::buffer(second)};
    asio::async_write(socket, buffers, [&](boost::system::error_code ec, std::size_t) {
      result = ec;
      done = true;
    });
    if (!run_until(done, deadline)) return asio::error::timed_out;
    if (result) close();
    return result;
  }

  // Whether something (a response, EOF, an error) arrives before `until`; the connection
  // stays open either way.
  bool readable_before(steady::time_point until) {
    if (buffer.size() != 0) return true;
    bool done = false;
    socket.async_wait(asio::socket_base::wait_read, [&](boost::system::error_code) { done = true; });
    return run_until(done, until, on_timeout::cancel);
  }

  // Reads one response, interim or final. `got_some` becomes true once any byte of a
  // response arrived. A failure closes the connection.
  boost::system::result<message> read_message(bool head_method, steady::time_point deadline, bool& got_some) {
    http::response_parser<http::string_body> parser;
    parser.header_limit(64 * 1024);
    parser.body_limit(std::uint64_t{256} * 1024 * 1024);
    if (head_method) parser.skip(true);
    bool done = false;
    boost::system::error_code result;
    http::async_read(socket, buffer, parser, [&](boost::system::error_code ec, std::size_t) {
      result = ec;
      done = true;
    });
    const bool finished = run_until(done, deadline);
    got_some = got_some || parser.got_some();
    if (!finished) return boost::system::error_code(asio::error::timed_out);
    if (result) {
      close();
      return result;
    }
    return parser.release();
  }

  // The final response as the session reports it; closes the connection unless it stays
  // usable (kept alive, and no request body left unsent).
  http_response finish(message&& last, std::vector<unsigned>&& interim, bool was_reused, bool body_sent) {
    http_response response;
    response.status = last.result_int();
    for (const auto& field : last) response.headers.emplace_back(field.name_string(), field.value());
    response.body = std::move(last.body());
    response.reused = was_reused;
    response.interim = std::move(interim);
    if (last.keep_alive() && body_sent && response.status != 101)
      reused = true;
    else
      close();
    return response;
  }

  // With `Expect: 100-continue`: waits for the server's answer to the header alone. Returns
  // nullopt when the body is to be sent (a 100 or another interim response came, or nothing
  // within continue_wait), the final response when one came instead.
  boost::system::result<std::optional<message>> await_continue(bool head_method, steady::time_point deadline,
                                                               bool& got_some, std::vector<unsigned>& interim) {
    if (!readable_before(std::min(deadline, steady::now() + continue_wait))) return std::nullopt;
    auto answer = read_message(head_method, deadline, got_some);
    if (!answer) return answer.error();
    if (!is_interim(answer->result_int())) return std::optional<message>(std::move(*answer));
    interim.push_back(answer->result_int());
    return std::nullopt;
  }

  // One request and its response on the open connection.
  boost::system::result<http_response> exchange(const outgoing& out, steady::time_point deadline, bool& got_some) {
    got_some = false;
    const bool was_reused = reused;
    if (auto ec = write(out.head, out.await_continue ? std::string_view{} : out.body, deadline)) return ec;
    std::vector<unsigned> interim;
    if (out.await_continue) {
      auto early = await_continue(out.head_method, deadline, got_some, interim);
      if (!early) return early.error();
      if (*early) return finish(std::move(**early), std::move(interim), was_reused, false);
      if (auto ec = write(out.body, {}, deadline)) return ec;
    }
    for (;;) {
      auto answer = read_message(out.head_method, deadline, got_some);
      if (!answer) return answer.error();
      if (!is_interim(answer->result_int())) return finish(std::move(*answer), std::move(interim), was_reused, true);
      interim.push_back(answer->result_int());
    }
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

boost::system::result<http_response> http_session::try_request(const http_request& request) {
  check_request(request);
  const outgoing out = prepare(request);
  const auto deadline = steady::now() + impl_->timeout;
  for (int attempt = 0;; ++attempt) {
    const bool reused = impl_->socket.is_open() && impl_->reused;
    if (!impl_->socket.is_open()) {
      if (auto ec = impl_->connect(deadline)) return ec;
    }
    bool got_some = false;
    auto response = impl_->exchange(out, deadline, got_some);
    if (response) return response;
    // Sent again only when the server cannot have seen it: a stale kept-alive connection.
    if (attempt == 0 && reused && out.idempotent && !got_some && closed_by_peer(response.error())) {
      impl_->close();
      continue;
    }
    return response.error();
  }
}

boost::system::result<http_response> http_session::try_request(std::string_view method, std::string_view target,
                                                               std::string_view body) {
  return try_request(http_request{std::string(method), std::string(target), {}, std::string(body)});
}

http_response http_session::request(const http_request& request) {
  auto response = try_request(request);
  if (!response) {
    throw std::runtime_error(request.method + " " + request.target + " on " + impl_->address + ": " +
                             response.error().message());
  }
  return std::move(*response);
}

http_response http_session::request(std::string_view method, std::string_view target, std::string_view body,
                                    const http_headers& headers) {
  return request(http_request{std::string(method), std::string(target), headers, std::string(body)});
}

http_response http_session::get(std::string_view target, const http_headers& headers) {
  return request("GET", target, {}, headers);
}

http_response http_session::post(std::string_view target, std::string_view body, std::string_view content_type,
                                 const http_headers& headers) {
  http_request request{"POST", std::string(target), {}, std::string(body)};
  if (!content_type.empty() && !has_header(headers, "Content-Type"))
    request.headers.emplace_back("Content-Type", content_type);
  request.headers.insert(request.headers.end(), headers.begin(), headers.end());
  return this->request(request);
}

http_response http_session::post_json(std::string_view target, const boost::json::value& body,
                                      const http_headers& headers) {
  return post(target, boost::json::serialize(body), "application/json", headers);
}

std::size_t http_session::connections() const noexcept { return impl_->connections; }

void http_session::close() noexcept { impl_->close(); }

const std::string& http_session::address() const noexcept { return impl_->address; }

// --- server -------------------------------------------------------------------------------

}  // namespace prefork::testing
