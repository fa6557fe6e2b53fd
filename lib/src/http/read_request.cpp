// Reading one request in http::serve: the parser under the configured limits, 100-continue,
// and the answer (or silent close) when a request could not be read.
#include "http/http_session.hpp"

#include "http/response_head.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/read_size.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/http/error.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <tuple>

namespace prefork::http::detail {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = beast::http;
using boost::system::error_code;

bool wants_continue(const request_parser& parser) {
  const auto& message = parser.get();
  if (message.version() < 11) return false;
  const auto expect = message.find(bhttp::field::expect);
  return expect != message.end() && beast::iequals(expect->value(), "100-continue");
}

struct error_answer {
  unsigned status;
  std::string_view body;
};

/// The response a failed read deserves; status 0 means: close without answering.
error_answer answer_for(const http_session& s, error_code ec) {
  if (s.deadline->expired) {
    // Nothing of a request arrived: nobody waits for an answer.
    if (!s.parser->got_some()) return {0, {}};
    return {408, "Request Timeout\n"};
  }
  if (ec == bhttp::error::header_limit || ec == bhttp::error::buffer_overflow) {
    return {431, "Request Header Fields Too Large\n"};
  }
  if (ec == bhttp::error::body_limit) return {413, "Payload Too Large\n"};
  // The client closed before a request or in the middle of one: it reads nothing more.
  if (ec == bhttp::error::end_of_stream || ec == bhttp::error::partial_message) return {0, {}};
  if (ec.category() == bhttp::make_error_code(bhttp::error::bad_method).category()) {
    return {400, "Bad Request\n"};
  }
  return {0, {}};  // a socket error
}

}  // namespace

void start_parser(http_session& s) {
  s.parser.emplace(std::piecewise_construct, std::make_tuple(), std::make_tuple(fields_allocator(&s.arena)));
  constexpr std::size_t max_header_limit = std::numeric_limits<std::uint32_t>::max();
  s.parser->header_limit(static_cast<std::uint32_t>(std::min(s.limits.max_header_bytes, max_header_limit)));
  s.parser->body_limit(static_cast<std::uint64_t>(s.limits.max_body_bytes));
  s.parser->eager(true);  // parse the body in the same put() as the header
}

asio::awaitable<error_code> read_request(http_session& s) {
  request_parser& parser = *s.parser;
  bool continue_sent = false;
  // Beast 1.81 checks header_limit within each put() alone, and put() consumes the complete
  // fields of an unfinished header: a header sent in pieces would have no limit at all.
  // So while the header is pending, the bytes it consumed are counted here and put() sees
  // at most the rest of the budget.
  std::size_t header_bytes = 0;
  bool header_checked = false;
  error_code ec;
  while (!parser.is_done()) {
    if (s.buffer.size() != 0) {
      const bool header_pending = !parser.is_header_done();
      const auto input =
          header_pending ? asio::buffer(s.buffer.data(), s.limits.max_header_bytes - header_bytes) : s.buffer.data();
      const std::size_t used = parser.put(input, ec);
      s.buffer.consume(used);
      if (ec && ec != bhttp::error::need_more) co_return ec;
      if (header_pending && !parser.is_header_done()) {
        header_bytes += used;
        if (header_bytes + s.buffer.size() >= s.limits.max_header_bytes) co_return bhttp::error::header_limit;
      }
      if (!header_checked && parser.is_header_done()) {
        header_checked = true;
        // RFC 9112 6.3: a request whose Transfer-Encoding does not end in chunked has no
        // reliable length (Beast would read it as bodiless: request smuggling).
        const auto& message = parser.get();
        if (message.find(bhttp::field::transfer_encoding) != message.end() && !parser.chunked())
          co_return bhttp::error::bad_transfer_encoding;
        continue;  // the body may already be buffered beyond the header's budget
      }
      if (!ec) continue;
      ec = {};
    }
    // The deadline may have fired while a read was completing: its cancel hit nothing.
    if (s.deadline->expired) co_return asio::error::operation_aborted;
    if (!continue_sent && parser.is_header_done() && wants_continue(parser)) {
      // The body is within limits (the parser checked Content-Length): ask for it.
      s.out += "HTTP/1.1 100 Continue\r\n\r\n";
      continue_sent = true;
    }
    if (!s.out.empty()) {
      if (const error_code flush_ec = co_await flush(s)) co_return flush_ec;
    }
    const std::size_t size = beast::read_size(s.buffer, max_read_size);
    if (size == 0) co_return bhttp::error::buffer_overflow;
    error_code read_ec;
    std::size_t bytes = 0;
    if (!s.conn.registered()) {
      // A new connection's request is usually there already: read it without the reactor.
      bytes = s.conn.try_read_some(s.buffer.prepare(size), read_ec);
    }
    if (s.conn.registered() || read_ec == asio::error::would_block) {
      std::tie(read_ec, bytes) =
          co_await s.conn.socket().async_read_some(s.buffer.prepare(size), asio::as_tuple(asio::use_awaitable));
    }
    s.buffer.commit(bytes);
    if (read_ec == asio::error::eof) {
      if (!parser.got_some()) co_return bhttp::error::end_of_stream;
      parser.put_eof(ec);  // completes a request whose end is the end of the stream, or fails
      if (ec) co_return ec;
      continue;
    }
    if (read_ec) co_return read_ec;
  }
  co_return error_code{};
}

asio::awaitable<void> end_after_read_error(http_session& s, error_code read_ec) {
  const error_answer refusal = answer_for(s, read_ec);
  if (refusal.status == 0) {
    co_await close_connection(s, linger::never);
    co_return;
  }
  s.answer = response(refusal.status, std::string(refusal.body));
  append_head(s.out, s.answer, connection_header::close);
  s.out += refusal.body;
  ++s.out_responses;
  begin_deadline(s, s.limits.request_timeout);
  const error_code ec = co_await flush(s);
  end_deadline(s);
  // The client may still be sending the rest of what we refused (a 2 MiB body).
  co_await close_connection(s, ec ? linger::never : linger::always);
}

}  // namespace prefork::http::detail
