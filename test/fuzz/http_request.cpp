// Fuzzes the hello app's HTTP request path: http::serve with hello's routes serves one
// connection of a socketpair whose client sends the fuzz input, then half-closes and reads
// everything back. Byte 0 of the input is the client's write size (0: all at once), so
// requests also arrive split at every possible place; the rest is the client's bytes.
// Checks: no sanitizer report, no exception, the session ends (EOF always comes, so no
// deadline has to fire), and whatever the server wrote is a sequence of HTTP/1.1 responses.
#include "prefork/config.hpp"
#include "prefork/connection.hpp"
#include "prefork/http/app.hpp"
#include "prefork/http_apps.hpp"
#include "prefork/worker_context.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <signal.h>
#include <sys/socket.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <memory>
#include <string>
#include <string_view>

namespace asio = boost::asio;
using namespace std::chrono_literals;

namespace {

// Small limits so that 413 and 431 are reachable with short inputs; the timeouts only
// bound a session that would otherwise hang (a bug: the client always half-closes).
prefork::config make_config() {
  prefork::config cfg = prefork::default_config();
  cfg.http.max_header_bytes = 512;
  cfg.http.max_body_bytes = 1024;
  cfg.http.request_timeout = 1s;
  cfg.keepalive = 1s;
  return cfg;
}

[[noreturn]] void fail(const char* what) {
  std::fprintf(stderr, "http_request fuzzer: %s\n", what);
  std::abort();
}

asio::awaitable<void> run_client(prefork::socket_type& socket, std::string_view input, std::size_t chunk,
                                 std::string& received) {
  // Write errors are expected (the server may close after a 400): stop writing, keep reading.
  while (!input.empty()) {
    const std::size_t size = chunk == 0 ? input.size() : std::min(chunk, input.size());
    auto [ec, written] =
        co_await asio::async_write(socket, asio::buffer(input.data(), size), asio::as_tuple(asio::use_awaitable));
    if (ec) break;
    input.remove_prefix(written);
  }
  boost::system::error_code ignored;
  socket.shutdown(prefork::socket_type::shutdown_send, ignored);
  char buffer[4096];
  for (;;) {
    auto [ec, bytes] = co_await socket.async_read_some(asio::buffer(buffer), asio::as_tuple(asio::use_awaitable));
    received.append(buffer, bytes);
    if (ec) break;
  }
}

// Every response starts with a status line and ends its head with an empty line; the
// server writes only whole responses, so the output is well formed up to its end.
void check_responses(std::string_view out) {
  if (out.empty()) return;
  if (!out.starts_with("HTTP/1.1 ")) fail("output does not start with a status line");
  if (out.find("\r\n\r\n") == std::string_view::npos) fail("a response head is not terminated");
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  ::signal(SIGPIPE, SIG_IGN);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const prefork::config cfg = make_config();
  static const auto routes = std::make_shared<const prefork::http::router>(prefork::hello_routes());
  if (size == 0) return 0;
  const std::size_t chunk = data[0];
  const std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);

  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) fail("socketpair");
  asio::io_context io;
  prefork::worker_context worker(io.get_executor(), cfg, 1, 1);
  const asio::generic::stream_protocol protocol(AF_UNIX, 0);
  prefork::socket_type server(io, protocol, fds[0]);
  prefork::socket_type client(io, protocol, fds[1]);

  bool server_done = false;
  bool client_done = false;
  std::string received;
  asio::co_spawn(io, prefork::http::serve(prefork::connection(std::move(server), 0, worker), routes),
                 [&](std::exception_ptr error) {
                   if (error) fail("http::serve threw");
                   server_done = true;
                 });
  asio::co_spawn(io, run_client(client, input, chunk, received), [&](std::exception_ptr error) {
    if (error) fail("the client threw");
    client_done = true;
  });
  io.run_for(5s);
  if (!server_done || !client_done) fail("the session did not finish within 5 s");
  check_responses(received);
  if (worker.requests() > 0 && received.empty()) fail("requests counted but nothing written");
  return 0;
}
