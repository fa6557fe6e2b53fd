// The HTTP/1.x connection loop on Boost.Beast (http::serve): reads requests under the
// configured limits and deadlines, asks the router for each response, writes them.
// Its steps live beside it: read_request.cpp, session_output.cpp, response_head.cpp.
#include "prefork/http/app.hpp"

#include "http/http_session.hpp"
#include "http/response_head.hpp"
#include "prefork/log.hpp"
#include "prefork/worker_context.hpp"

#include <boost/asio/use_awaitable.hpp>

#include <array>
#include <charconv>
#include <cstddef>
#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace prefork::http {
namespace {

namespace asio = boost::asio;
using boost::system::error_code;
using detail::append_head;
using detail::begin_deadline;
using detail::close_connection;
using detail::connection_header;
using detail::deadline_guard;
using detail::end_after_read_error;
using detail::end_deadline;
using detail::finish_request;
using detail::flush_before_waiting;
using detail::framing;
using detail::http_session;
using detail::linger;
using detail::read_request;
using detail::start_parser;
using detail::timed_flush;
using detail::without_content;

// Pipelined responses are batched in one write up to this size.
constexpr std::size_t flush_threshold = 64 * 1024;
// Bodies larger than this are written from where they are (gather write), not copied.
constexpr std::size_t inline_body_limit = 16 * 1024;

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
