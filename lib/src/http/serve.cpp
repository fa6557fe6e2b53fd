// The HTTP/1.x connection loop on Boost.Beast (http::serve): reads requests under the
// configured limits and deadlines, asks the router for each response, writes them.
// The only translation unit that includes Beast's parser.
#include "prefork/http/app.hpp"

#include "prefork/log.hpp"
#include "prefork/worker_context.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/read_size.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/status.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/verb.hpp>
#include <boost/core/demangle.hpp>

#include <algorithm>
#include <array>
#include <charconv>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <ctime>
#include <exception>
#include <limits>
#include <memory>
#include <memory_resource>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>

namespace prefork::http {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = beast::http;
using boost::system::error_code;
using clock_type = std::chrono::steady_clock;

// Pipelined responses are batched in one write up to this size.
constexpr std::size_t flush_threshold = 64 * 1024;
// Bodies larger than this are written from where they are (gather write), not copied.
constexpr std::size_t inline_body_limit = 16 * 1024;
constexpr std::size_t max_read_size = 64 * 1024;
constexpr std::size_t initial_buffer_size = 4096;
// Longest time a closing connection keeps reading (and discarding) what the client sends.
constexpr std::chrono::seconds linger_timeout{2};
// After a deadline expired, the socket is cancelled again at this pace until the session
// ends the deadline.
constexpr std::chrono::milliseconds recancel_interval{100};
// Request header fields live in a per-connection arena reset after each request.
constexpr std::size_t arena_size = 4096;

// ---------------------------------------------------------------------------------------
// The Date header, formatted at most once per second (RFC 9110 IMF-fixdate).

class date_line_cache {
 public:
  std::string_view line() noexcept {
    const std::time_t now = std::time(nullptr);
    if (now != second_) format(now);
    return {text_.data(), text_.size()};
  }

 private:
  static char* put2(char* p, int value) noexcept {
    *p++ = static_cast<char>('0' + value / 10 % 10);
    *p++ = static_cast<char>('0' + value % 10);
    return p;
  }

  void format(std::time_t now) noexcept {
    static constexpr std::string_view days = "SunMonTueWedThuFriSat";
    static constexpr std::string_view months = "JanFebMarAprMayJunJulAugSepOctNovDec";
    std::tm utc{};
    ::gmtime_r(&now, &utc);
    char* p = text_.data();
    p = std::copy_n("Date: ", 6, p);
    p = std::copy_n(days.data() + 3 * utc.tm_wday, 3, p);
    p = std::copy_n(", ", 2, p);
    p = put2(p, utc.tm_mday);
    *p++ = ' ';
    p = std::copy_n(months.data() + 3 * utc.tm_mon, 3, p);
    *p++ = ' ';
    const int year = utc.tm_year + 1900;
    p = put2(p, year / 100);
    p = put2(p, year % 100);
    *p++ = ' ';
    p = put2(p, utc.tm_hour);
    *p++ = ':';
    p = put2(p, utc.tm_min);
    *p++ = ':';
    p = put2(p, utc.tm_sec);
    std::copy_n(" GMT\r\n", 6, p);
    second_ = now;
  }

  std::time_t second_ = -1;
  std::array<char, 37> text_{};  // "Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n"
};

thread_local date_line_cache date_cache;

// ---------------------------------------------------------------------------------------
// Response heads, written into the connection's output string (no allocation once its
// capacity is reached).

enum class connection_header { none, keep_alive, close };

/// How the body's end is shown: its length, the last chunk, or the connection's end.
enum class framing { content_length, chunked, until_close };

void append_status_line(std::string& out, unsigned status) {
  switch (status) {
    case 200: out += "HTTP/1.1 200 OK\r\n"; return;
    case 400: out += "HTTP/1.1 400 Bad Request\r\n"; return;
    case 404: out += "HTTP/1.1 404 Not Found\r\n"; return;
    case 405: out += "HTTP/1.1 405 Method Not Allowed\r\n"; return;
    case 408: out += "HTTP/1.1 408 Request Timeout\r\n"; return;
    case 413: out += "HTTP/1.1 413 Payload Too Large\r\n"; return;
    case 431: out += "HTTP/1.1 431 Request Header Fields Too Large\r\n"; return;
    default: break;
  }
  std::array<char, 16> digits{};
  const auto [end, ignored] = std::to_chars(digits.data(), digits.data() + digits.size(), status);
  // The reason phrase is optional (RFC 9112 4): empty for a status Beast does not know.
  const beast::string_view reason = bhttp::int_to_status(status) == bhttp::status::unknown
                                        ? ""
                                        : bhttp::obsolete_reason(static_cast<bhttp::status>(status));
  out += "HTTP/1.1 ";
  out.append(digits.data(), end);
  out += ' ';
  out.append(reason.data(), reason.size());
  out += "\r\n";
}

/// Whether a response with `status` has no content (RFC 9110 15.3.5, 15.4.5): no body,
/// and no Content-Length.
bool without_content(unsigned status) noexcept { return status == 204 || status == 304; }

void append_head(std::string& out, const response& answer, connection_header connection,
                 framing frame = framing::content_length) {
  append_status_line(out, answer.status());
  out += "Server: prefork\r\n";
  out += date_cache.line();
  const std::string_view content_type = answer.content_type();
  if (!content_type.empty()) {
    out += "Content-Type: ";
    out += content_type;
    out += "\r\n";
  }
  if (frame == framing::chunked && !without_content(answer.status())) {
    out += "Transfer-Encoding: chunked\r\n";
  } else if (frame == framing::content_length && !without_content(answer.status())) {
    std::array<char, 24> digits{};
    const auto [end, ignored] = std::to_chars(digits.data(), digits.data() + digits.size(), answer.body().size());
    out += "Content-Length: ";
    out.append(digits.data(), end);
    out += "\r\n";
  }
  out += answer.header_lines();
  if (connection == connection_header::close) {
    out += "Connection: close\r\n";
  } else if (connection == connection_header::keep_alive) {
    out += "Connection: keep-alive\r\n";
  }
  out += "\r\n";
}

// ---------------------------------------------------------------------------------------
// The request deadline. One steady_timer per connection, armed lazily: starting a request
// only records its deadline; the timer re-arms itself when it fires early, so a request
// costs no timer syscall. On expiry it cancels the socket's pending read or write.
// The state is shared with the timer's handler, which may run after the session ended.

struct deadline_state {
  explicit deadline_state(const asio::any_io_executor& executor) : timer(executor) {}

  asio::steady_timer timer;
  connection* conn = nullptr;  // null once the session ended
  clock_type::time_point deadline{};
  clock_type::time_point armed_until = clock_type::time_point::max();  // max: no wait pending
  std::uint64_t arm_sequence = 0;
  bool active = false;
  bool expired = false;
};

void arm_deadline_timer(const std::shared_ptr<deadline_state>& state);

struct deadline_handler {
  std::shared_ptr<deadline_state> state;
  std::uint64_t sequence;

  void operator()(error_code ec) const {
    deadline_state& s = *state;
    if (sequence != s.arm_sequence) return;  // superseded by a later, earlier-expiring wait
    s.armed_until = clock_type::time_point::max();
    if (ec || s.conn == nullptr || !s.active) return;
    if (clock_type::now() < s.deadline) {
      arm_deadline_timer(state);
      return;
    }
    s.expired = true;
    s.conn->cancel();
    // The cancel hits nothing if an operation was completing right now and the next
    // step of a composed write starts after it: cancel again until the owner reacts.
    s.deadline = clock_type::now() + recancel_interval;
    arm_deadline_timer(state);
  }
};

void arm_deadline_timer(const std::shared_ptr<deadline_state>& state) {
  state->armed_until = state->deadline;
  state->timer.expires_at(state->deadline);  // cancels a pending wait: its sequence is stale
  state->timer.async_wait(deadline_handler{state, ++state->arm_sequence});
}

/// Cancels the timer when the session ends (normally or not) and tells a handler still
/// queued that the socket is gone.
struct deadline_guard {
  deadline_state& state;
  ~deadline_guard() {
    state.conn = nullptr;
    state.active = false;
    state.timer.cancel();
  }
};

// ---------------------------------------------------------------------------------------
// One connection's state; lives in serve's frame and is never moved.

using fields_allocator = std::pmr::polymorphic_allocator<char>;
using request_parser = bhttp::request_parser<bhttp::string_body, fields_allocator>;

struct http_session {
  http_session(connection c, std::shared_ptr<const router> r)
      : conn(std::move(c)),
        routes(std::move(r)),
        limits(conn.worker().settings().http),
        keepalive(conn.worker().settings().keepalive),
        arena(arena_storage.data(), arena_storage.size(), std::pmr::new_delete_resource()),
        deadline(std::make_shared<deadline_state>(conn.get_executor())) {
    buffer.reserve(initial_buffer_size);
    out.reserve(initial_buffer_size);
    deadline->conn = &conn;
  }

  connection conn;
  std::shared_ptr<const router> routes;
  const http_config& limits;
  clock_type::duration keepalive;
  beast::flat_buffer buffer;  // bytes read and not parsed yet: pipelined requests stay here
  std::string out;            // responses not written yet
  unsigned out_responses = 0;
  std::array<std::byte, arena_size> arena_storage{};
  std::pmr::monotonic_buffer_resource arena;
  std::optional<request_parser> parser;
  std::optional<request> current;  // the request being answered, over *parser
  response answer;                 // its response
  std::shared_ptr<deadline_state> deadline;
};

void begin_deadline(http_session& s, clock_type::duration timeout) {
  deadline_state& d = *s.deadline;
  d.deadline = clock_type::now() + timeout;
  d.active = true;
  d.expired = false;
  if (d.armed_until > d.deadline) arm_deadline_timer(s.deadline);
}

void end_deadline(http_session& s) noexcept { s.deadline->active = false; }

void start_parser(http_session& s) {
  s.parser.emplace(std::piecewise_construct, std::make_tuple(), std::make_tuple(fields_allocator(&s.arena)));
  constexpr std::size_t max_header_limit = std::numeric_limits<std::uint32_t>::max();
  s.parser->header_limit(static_cast<std::uint32_t>(std::min(s.limits.max_header_bytes, max_header_limit)));
  s.parser->body_limit(static_cast<std::uint64_t>(s.limits.max_body_bytes));
  s.parser->eager(true);  // parse the body in the same put() as the header
}

void finish_request(http_session& s) noexcept {
  s.current.reset();
  s.parser.reset();
  s.arena.release();  // every field of the request is gone with the parser
}

bool wants_continue(const request_parser& parser) {
  const auto& message = parser.get();
  if (message.version() < 11) return false;
  const auto expect = message.find(bhttp::field::expect);
  return expect != message.end() && beast::iequals(expect->value(), "100-continue");
}

void count_written(http_session& s) noexcept {
  for (; s.out_responses != 0; --s.out_responses) s.conn.worker().count_request();
}

/// Writes s.out, then `body` (a large body written where it is).
asio::awaitable<error_code> flush(http_session& s, std::string_view body = {}) {
  std::array<asio::const_buffer, 2> buffers{asio::buffer(s.out), asio::buffer(body.data(), body.size())};
  error_code ec;
  if (!s.conn.registered()) {
    // A new connection's response usually fits in the socket buffer at once: no reactor.
    std::size_t written = s.conn.try_write_some(buffers, ec);
    for (auto& buffer : buffers) {
      const std::size_t used = std::min(written, buffer.size());
      buffer += used;
      written -= used;
    }
    if (ec == asio::error::would_block) ec = {};
  }
  if (!ec && buffers[0].size() + buffers[1].size() != 0) {
    auto [write_ec, written] =
        co_await asio::async_write(s.conn.socket(), buffers, asio::as_tuple(asio::use_awaitable));
    (void)written;
    ec = write_ec;
  }
  s.out.clear();
  if (ec) {
    s.out_responses = 0;
    co_return ec;
  }
  count_written(s);
  co_return error_code{};
}

/// Reads until *s.parser holds a complete request, under the deadline the caller set.
/// Responses still queued (pipelining) are written before any read: the client may wait
/// for them before sending more. Errors: Beast's parse errors (header_limit, body_limit,
/// partial_message, end_of_stream when EOF came before any byte...), socket errors, and
/// operation_aborted when the deadline expired.
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

/// When close_connection reads and discards what the client still sends before closing:
/// never; if_buffered: when bytes beyond the last request were read already (the client
/// said it would close, so nothing is asked of the socket); if_data_pending: also when
/// the socket holds unread bytes (FIONREAD); always.
enum class linger { never, if_buffered, if_data_pending, always };

/// Ends the connection. When the client may still be sending: FIN first, then read and
/// discard for a bounded time, because closing with unread data makes the kernel reset
/// the connection, and a reset can destroy the response before the client reads it.
/// Otherwise close() alone, which sends the FIN after the response (one syscall and one
/// wake-up of the client fewer per connection than shutdown + close).
asio::awaitable<void> close_connection(http_session& s, linger mode) {
  error_code ignored;
  const bool drain = mode == linger::always || (mode != linger::never && s.buffer.size() != 0) ||
                     (mode == linger::if_data_pending && s.conn.available() != 0);
  if (drain) {
    socket_type& socket = s.conn.socket();
    socket.shutdown(socket_type::shutdown_send, ignored);
    begin_deadline(s, std::min<clock_type::duration>(linger_timeout, s.limits.request_timeout));
    for (;;) {
      s.buffer.clear();
      auto [ec, bytes] = co_await socket.async_read_some(s.buffer.prepare(beast::read_size(s.buffer, max_read_size)),
                                                         asio::as_tuple(asio::use_awaitable));
      (void)bytes;
      if (ec || s.deadline->expired) break;
    }
    end_deadline(s);
  }
  s.conn.close();
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

/// Answers a request that could not be read (400, 408, 413, 431), or not, and closes.
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

/// The answer when the router has no handler: 404, or 405 with the methods the path has.
response no_route(const route_match& match) {
  if (match.status == 404) return response(404, "Not Found\n");
  response answer(405, "Method Not Allowed\n");
  answer.set_header("Allow", match.allow);
  return answer;
}

/// Called in a catch block: the handler's exception as the answer. An http_error is the
/// handler's chosen answer; anything else is the handler's failure, answered 500 and logged.
response answer_for_exception(const http_session& s) {
  const request& r = *s.current;
  std::string what;
  try {
    throw;
  } catch (const http_error& e) {
    log_debug("HTTP handler answered with an error",
              {{"target", r.target()}, {"status", e.status()}, {"message", e.what()}});
    std::string body = e.what();
    body += '\n';
    return response(e.status(), std::move(body));
  } catch (const std::exception& e) {
    what = e.what();
  } catch (...) {
    what = "an exception that is not a std::exception";
  }
  // The line carries the worker's id, as every line a worker writes.
  log_error("HTTP handler failed", {{"method", r.method_string()}, {"target", r.target()}, {"error", what}});
  return response(500, "Internal Server Error\n");
}

/// flush() under the write deadline.
asio::awaitable<error_code> timed_flush(http_session& s, std::string_view body = {}) {
  begin_deadline(s, s.limits.request_timeout);
  const error_code ec = co_await flush(s, body);
  end_deadline(s);
  co_return ec;
}

/// Writes what is queued (earlier pipelined answers) before a handler that may wait.
asio::awaitable<error_code> flush_before_waiting(http_session& s) {
  if (s.out.empty()) co_return error_code{};
  co_return co_await timed_flush(s);
}

/// Writes the queued head, then each piece of s.answer's body stream as it comes (as a
/// chunk when `chunked`). False when the connection must end at once: a write failed, or
/// the stream threw (logged; the body stays incomplete, so the client cannot take it for
/// a whole one).
asio::awaitable<bool> stream_body(http_session& s, bool chunked) {
  if (co_await timed_flush(s)) co_return false;
  const body_stream& next = s.answer.stream();
  bool first = true;
  for (;;) {
    std::optional<std::string> piece;
    std::string failure;
    try {
      piece = co_await next();
    } catch (const std::exception& e) {
      failure = e.what();
    } catch (...) {
      failure = "an exception that is not a std::exception";
    }
    if (!failure.empty()) {
      log_error("HTTP body stream failed", {{"target", s.current->target()}, {"error", failure}});
      co_return false;
    }
    if (!piece) break;
    if (piece->empty()) continue;  // an empty chunk would say the body ended
    if (chunked) {
      if (!first) s.out += "\r\n";  // ends the previous chunk's data
      std::array<char, 24> digits{};
      const auto [end, ignored] = std::to_chars(digits.data(), digits.data() + digits.size(), piece->size(), 16);
      s.out.append(digits.data(), end);
      s.out += "\r\n";
    }
    first = false;
    if (co_await timed_flush(s, *piece)) co_return false;
  }
  if (chunked) {
    if (!first) s.out += "\r\n";
    s.out += "0\r\n\r\n";
    if (co_await timed_flush(s)) co_return false;
  }
  co_return true;
}

}  // namespace

asio::awaitable<void> serve(connection conn, std::shared_ptr<const router> routes) {
  http_session s(std::move(conn), std::move(routes));
  const deadline_guard guard{*s.deadline};
  // The first request is read at once, bounded by request_timeout: a new connection
  // was accepted for a request, so draining does not cut it. Between requests, an idle
  // connection waits in wait_for_request (keep-alive timeout, drain).
  bool first_request = true;
  for (;;) {
    if (!first_request && s.buffer.size() == 0) {
      const wait_result waited = co_await s.conn.wait_for_request(s.keepalive);
      if (waited != wait_result::readable) {
        co_await close_connection(s, waited == wait_result::error ? linger::never : linger::if_data_pending);
        co_return;
      }
    }
    first_request = false;

    begin_deadline(s, s.limits.request_timeout);
    start_parser(s);
    const error_code read_ec = co_await read_request(s);
    end_deadline(s);
    if (read_ec) {
      co_await end_after_read_error(s, read_ec);
      co_return;
    }

    request& current = s.current.emplace(s.parser->get(), s.conn.worker());
    const route_match match = s.routes->match(current);
    if (match.plain != nullptr) {
      try {
        s.answer = (*match.plain)(current);
      } catch (...) {
        s.answer = answer_for_exception(s);
      }
    } else if (match.coroutine != nullptr) {
      if (co_await flush_before_waiting(s)) {  // earlier pipelined answers need not wait for this one
        co_await close_connection(s, linger::never);
        co_return;
      }
      try {
        s.answer = co_await (*match.coroutine)(current);
      } catch (...) {
        s.answer = answer_for_exception(s);
      }
    } else {
      s.answer = no_route(match);
    }

    // A client that asked to close sends nothing more (RFC 9112 9.6): nothing to linger for.
    const bool client_closes = !s.parser->get().keep_alive();
    const framing frame = !s.answer.streams()       ? framing::content_length
                          : current.version() >= 11 ? framing::chunked
                                                    : framing::until_close;
    const bool keep_alive =
        !client_closes && !s.answer.closes_connection() && !s.conn.draining() && frame != framing::until_close;
    const connection_header header = !keep_alive              ? connection_header::close
                                     : current.version() < 11 ? connection_header::keep_alive
                                                              : connection_header::none;
    append_head(s.out, s.answer, header, frame);
    ++s.out_responses;
    const bool sends_body = current.method() != verb::head && !without_content(s.answer.status());
    std::string_view body;
    if (sends_body && frame != framing::content_length) {
      if (!co_await stream_body(s, frame == framing::chunked)) {
        co_await close_connection(s, linger::never);
        co_return;
      }
    } else if (sends_body) {
      body = s.answer.body();
    }
    if (body.size() <= inline_body_limit) {
      s.out += body;
      body = {};
    }
    // Batch answers while more pipelined requests are already buffered.
    if (!keep_alive || s.buffer.size() == 0 || s.out.size() >= flush_threshold || !body.empty()) {
      if (co_await timed_flush(s, body)) {
        co_await close_connection(s, linger::never);
        co_return;
      }
    }
    finish_request(s);
    if (!keep_alive) {
      co_await close_connection(s, client_closes ? linger::if_buffered : linger::if_data_pending);
      co_return;
    }
  }
}

namespace {

// Not a coroutine: hands serve's awaitable on, no extra frame.
struct serve_routes {
  std::shared_ptr<const router> routes;
  asio::awaitable<void> operator()(connection conn) const { return serve(std::move(conn), routes); }
};

}  // namespace

app make_app(std::string name, router routes) {
  return app{std::move(name), serve_routes{std::make_shared<const router>(std::move(routes))}};
}

}  // namespace prefork::http
