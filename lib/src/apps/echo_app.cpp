// The `echo` app: a raw byte echo over the connection, to show that the supervisor is not
// HTTP-bound (SPEC 4). Reads with async_read_some (which always yields to the loop, so a
// flooding client cannot starve the worker) and writes with a non-blocking write_some,
// falling back to a bounded wait for writability only when the client reads slowly.
#include "prefork/builtin_apps.hpp"

#include "prefork/log.hpp"
#include "prefork/worker_context.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <chrono>
#include <cstddef>
#include <memory>
#include <string_view>
#include <variant>

namespace prefork {
namespace {

namespace asio = boost::asio;
using namespace asio::experimental::awaitable_operators;
using boost::system::error_code;

// One buffer per connection, allocated once: 1000 connections per worker cost 16 MiB.
constexpr std::size_t buffer_size = 16 * 1024;

/// Writes all of `data`. A write the client does not take within `deadline` (measured
/// from each time the socket buffer is full) fails with timed_out; socket errors are
/// returned as they are. The socket is in non-blocking mode.
asio::awaitable<error_code> write_all(socket_type& socket, asio::steady_timer& timer, const char* data,
                                      std::size_t size, std::chrono::steady_clock::duration deadline) {
  while (size != 0) {
    error_code ec;
    const std::size_t written = socket.write_some(asio::buffer(data, size), ec);
    if (!ec) {
      data += written;
      size -= written;
      continue;
    }
    if (ec != asio::error::would_block && ec != asio::error::try_again) co_return ec;
    // The client's receive buffer is full: wait until it reads, for at most `deadline`.
    timer.expires_after(deadline);
    auto outcome = co_await (socket.async_wait(socket_type::wait_write, asio::as_tuple(asio::use_awaitable)) ||
                             timer.async_wait(asio::as_tuple(asio::use_awaitable)));
    if (outcome.index() == 1) co_return asio::error::timed_out;
    if (const auto [wait_ec] = std::get<0>(outcome); wait_ec) co_return wait_ec;
  }
  co_return error_code{};
}

void close_socket(socket_type& socket) {
  error_code ignored;
  socket.shutdown(socket_type::shutdown_send, ignored);
  socket.close(ignored);
}

asio::awaitable<void> serve_echo(connection conn) {
  socket_type& socket = conn.socket();
  const std::chrono::steady_clock::duration keepalive = conn.worker().settings().keepalive;
  const std::unique_ptr<char[]> buffer(new char[buffer_size]);
  asio::steady_timer timer(socket.get_executor());
  bool counted = false;
  std::string_view ended = "socket error";  // why the connection ended, for the debug log

  error_code ec;
  socket.non_blocking(true, ec);
  while (!ec) {
    // Idle (nothing unread): wait where a drain or the idle timeout can end us.
    if (socket.available(ec) == 0 && !ec) {
      const wait_result waited = co_await conn.wait_for_request(keepalive);
      if (waited == wait_result::idle_timeout) {
        ended = "idle timeout";
        break;
      }
      if (waited == wait_result::drained) {
        ended = "worker draining";
        break;
      }
      if (waited == wait_result::error) {
        ended = "wait for data failed";
        break;
      }
    }
    if (ec) break;
    auto [read_ec, bytes] =
        co_await socket.async_read_some(asio::buffer(buffer.get(), buffer_size), asio::as_tuple(asio::use_awaitable));
    if (read_ec == asio::error::eof) {
      ended = "end of stream";  // the client half-closed: all we read was written back
      break;
    }
    ec = read_ec;
    if (ec) break;
    ec = co_await write_all(socket, timer, buffer.get(), bytes, keepalive);
    if (ec) break;
    if (!counted) {
      counted = true;
      conn.worker().count_request();
    }
  }
  if (ec) {
    log_debug("echo connection failed", {{"error", ec.message()}});
  } else {
    log_debug("echo connection ended", {{"reason", ended}});
  }
  close_socket(socket);
}

}  // namespace

app make_echo_app() { return app{"echo", &serve_echo}; }

}  // namespace prefork
