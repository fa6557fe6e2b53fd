// One connection's state in http::serve, and the steps serve's loop is made of (reading a
// request, writing what is queued, closing). Included only by the http::serve sources: the
// only ones that include Beast's parser.
#pragma once

#include "http/request_deadline.hpp"
#include "prefork/config.hpp"
#include "prefork/connection.hpp"
#include "prefork/http/request.hpp"
#include "prefork/http/response.hpp"
#include "prefork/http/router.hpp"
#include "prefork/worker_context.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/system/error_code.hpp>

#include <array>
#include <chrono>
#include <cstddef>
#include <memory>
#include <memory_resource>
#include <optional>
#include <string>
#include <string_view>

namespace prefork::http::detail {

using clock_type = std::chrono::steady_clock;

constexpr std::size_t max_read_size = 64 * 1024;
constexpr std::size_t initial_buffer_size = 4096;
// Request header fields live in a per-connection arena reset after each request.
constexpr std::size_t arena_size = 4096;

using fields_allocator = std::pmr::polymorphic_allocator<char>;
using request_parser = boost::beast::http::request_parser<boost::beast::http::string_body, fields_allocator>;

// One connection's state; lives in serve's frame and is never moved.
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
  boost::beast::flat_buffer buffer;  // bytes read and not parsed yet: pipelined requests stay here
  std::string out;                   // responses not written yet
  unsigned out_responses = 0;
  std::array<std::byte, arena_size> arena_storage{};
  std::pmr::monotonic_buffer_resource arena;
  std::optional<request_parser> parser;
  std::optional<request> current;  // the request being answered, over *parser
  response answer;                 // its response
  std::shared_ptr<deadline_state> deadline;
};

inline void begin_deadline(http_session& s, clock_type::duration timeout) {
  deadline_state& d = *s.deadline;
  d.deadline = clock_type::now() + timeout;
  d.active = true;
  d.expired = false;
  if (d.armed_until > d.deadline) arm_deadline_timer(s.deadline);
}

inline void end_deadline(http_session& s) noexcept { s.deadline->active = false; }

/// A fresh parser for the next request, under the configured header and body limits.
void start_parser(http_session& s);

inline void finish_request(http_session& s) noexcept {
  s.current.reset();
  s.parser.reset();
  s.arena.release();  // every field of the request is gone with the parser
}

/// Reads until *s.parser holds a complete request, under the deadline the caller set.
/// Responses still queued (pipelining) are written before any read: the client may wait
/// for them before sending more. Errors: Beast's parse errors (header_limit, body_limit,
/// partial_message, end_of_stream when EOF came before any byte...), socket errors, and
/// operation_aborted when the deadline expired.
boost::asio::awaitable<boost::system::error_code> read_request(http_session& s);

/// Answers a request that could not be read (400, 408, 413, 431), or not, and closes.
boost::asio::awaitable<void> end_after_read_error(http_session& s, boost::system::error_code read_ec);

/// Writes s.out, then `body` (a large body written where it is).
boost::asio::awaitable<boost::system::error_code> flush(http_session& s, std::string_view body = {});

/// flush() under the write deadline.
boost::asio::awaitable<boost::system::error_code> timed_flush(http_session& s, std::string_view body = {});

/// Writes what is queued (earlier pipelined answers) before a handler that may wait.
boost::asio::awaitable<boost::system::error_code> flush_before_waiting(http_session& s);

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
boost::asio::awaitable<void> close_connection(http_session& s, linger mode);

}  // namespace prefork::http::detail
