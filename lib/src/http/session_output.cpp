// Writing what an http::serve session has queued (under the write deadline), and closing
// its connection, with a bounded linger when the client may still be sending.
#include "http/http_session.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/read_size.hpp>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstddef>

namespace prefork::http::detail {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
using boost::system::error_code;

// Longest time a closing connection keeps reading (and discarding) what the client sends.
constexpr std::chrono::seconds linger_timeout{2};

void count_written(http_session& s) noexcept {
  for (; s.out_responses != 0; --s.out_responses) s.conn.worker().count_request();
}

}  // namespace

asio::awaitable<error_code> flush(http_session& s, std::string_view body) {
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

asio::awaitable<error_code> timed_flush(http_session& s, std::string_view body) {
  begin_deadline(s, s.limits.request_timeout);
  const error_code ec = co_await flush(s, body);
  end_deadline(s);
  co_return ec;
}

asio::awaitable<error_code> flush_before_waiting(http_session& s) {
  if (s.out.empty()) co_return error_code{};
  co_return co_await timed_flush(s);
}

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

}  // namespace prefork::http::detail
