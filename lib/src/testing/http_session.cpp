// prefork::testing::http_session: blocking HTTP/1.1 exchanges with deadlines on one
// kept-alive connection (a stale one is retried once for an idempotent request), and the
// response's helpers. Requests are checked and serialized in outgoing_request.cpp.
#include "prefork/testing/http_session.hpp"

#include "prefork/socket_connect.hpp"
#include "testing/outgoing_request.hpp"
#include "testing/parse_endpoint.hpp"

#include <boost/asio/generic/stream_protocol.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <algorithm>
#include <array>
#include <stdexcept>

namespace prefork::testing {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
using steady = std::chrono::steady_clock;
using namespace std::chrono_literals;
using detail::check_request;
using detail::equal_ignoring_case;
using detail::has_header;
using detail::outgoing;
using detail::parse_endpoint;
using detail::prepare;
using detail::printable;

namespace {

// How long a body announced with `Expect: 100-continue` waits for the 100 before it is sent
// anyway: curl's default, for servers that ignore the expectation.
constexpr auto continue_wait = 1s;

// A 1xx response the final one follows (101 Switching Protocols is final).
bool is_interim(unsigned status) { return status >= 100 && status < 200 && status != 101; }

// The server closed a kept-alive connection before the request reached a handler.
bool closed_by_peer(const boost::system::error_code& ec) {
  return ec == http::error::end_of_stream || ec == asio::error::eof || ec == asio::error::connection_reset ||
         ec == asio::error::broken_pipe;
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
