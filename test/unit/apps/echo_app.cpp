// The echo app over real socketpairs: byte-exact echo of large and split writes,
// half-close, idle timeout, drain, a client that does not read, a client that vanishes.
#include "prefork/builtin_apps.hpp"

#include "prefork/config.hpp"
#include "prefork/connection.hpp"
#include "prefork/log.hpp"
#include "prefork/worker_context.hpp"
#include "unit_support/raw_http.hpp"
#include "worker/worker_drain.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/test/unit_test.hpp>

#include <chrono>
#include <cstddef>
#include <exception>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <string_view>
#include <sys/socket.h>
#include <unistd.h>
#include <vector>

namespace {

namespace asio = boost::asio;
using prefork::unit_support::millis;
using namespace std::chrono_literals;
using prefork::socket_type;
using clock_type = std::chrono::steady_clock;
using boost::system::error_code;

/// Sends debug lines to a temporary file while it lives; restores the default logging.
struct log_capture {
  std::filesystem::path dir;
  std::filesystem::path file;

  log_capture() {
    std::string pattern = (std::filesystem::temp_directory_path() / "prefork-echo-XXXXXX").string();
    BOOST_REQUIRE(::mkdtemp(pattern.data()) != nullptr);
    dir = pattern;
    file = dir / "log.txt";
    BOOST_REQUIRE(!prefork::init_logging(prefork::log_config{
        .level = prefork::log_level::debug, .file = file.string(), .format = prefork::log_format::text}));
  }
  ~log_capture() {
    prefork::init_logging(prefork::log_config{});
    std::error_code ignored;
    std::filesystem::remove_all(dir, ignored);
  }
  std::string text() const {
    std::ifstream in(file);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  }
  bool contains(std::string_view part) const { return text().find(part) != std::string::npos; }
};

/// A real worker_context on a fresh io_context; one echo connection from a socketpair.
struct harness {
  asio::io_context io;
  prefork::config cfg;
  std::optional<prefork::worker_context> worker;
  std::unique_ptr<socket_type> client;
  std::unique_ptr<socket_type> server;  // until start()
  bool server_done = false;
  std::exception_ptr server_error;

  harness() { cfg.keepalive = 2s; }

  /// Creates the socketpair; the client end can be written to before start().
  socket_type& open() {
    int fds[2];
    BOOST_REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) == 0);
    const asio::generic::stream_protocol unix_stream(AF_UNIX, SOCK_STREAM);
    server = std::make_unique<socket_type>(io, unix_stream, fds[0]);
    client = std::make_unique<socket_type>(io, unix_stream, fds[1]);
    return *client;
  }

  /// Starts the echo app on the server end (the worker is made here, after cfg is set).
  void start() {
    if (!client) open();
    worker.emplace(io.get_executor(), cfg, 1, 1);
    asio::co_spawn(io, prefork::make_echo_app().serve(prefork::connection(std::move(*server), 0, *worker)),
                   [this](std::exception_ptr e) {
                     server_done = true;
                     server_error = e;
                   });
  }

  /// Runs `client_task` (bounded) until it and the server finished.
  void run(asio::awaitable<void> client_task, std::chrono::milliseconds timeout = 5s) {
    bool client_done = false;
    std::exception_ptr client_error;
    asio::co_spawn(io, std::move(client_task), [&](std::exception_ptr e) {
      client_done = true;
      client_error = e;
    });
    io.run_for(timeout);
    BOOST_REQUIRE_MESSAGE(client_done, "client did not finish");
    if (client_error) std::rethrow_exception(client_error);
    BOOST_REQUIRE_MESSAGE(server_done, "server did not finish");
    BOOST_TEST(!server_error);
  }
};

/// Reads until EOF (or an error) into `received`; records when the end came.
asio::awaitable<void> read_to_end(socket_type& client, std::string& received, clock_type::time_point& ended,
                                  error_code& end_ec) {
  std::vector<char> chunk(65536);
  for (;;) {
    auto [ec, n] = co_await client.async_read_some(asio::buffer(chunk), asio::as_tuple(asio::use_awaitable));
    received.append(chunk.data(), n);
    if (ec) {
      end_ec = ec;
      ended = clock_type::now();
      co_return;
    }
  }
}

/// Reads exactly `size` bytes.
asio::awaitable<std::string> read_exactly(socket_type& client, std::size_t size) {
  std::string data(size, '\0');
  auto [ec, n] = co_await asio::async_read(client, asio::buffer(data), asio::as_tuple(asio::use_awaitable));
  if (ec) throw std::runtime_error("client read: " + ec.message() + " after " + std::to_string(n) + " bytes");
  co_return data;
}

asio::awaitable<void> write_text(socket_type& client, const std::string& text) {
  auto [ec, n] = co_await asio::async_write(client, asio::buffer(text), asio::as_tuple(asio::use_awaitable));
  (void)n;
  if (ec) throw std::runtime_error("client write: " + ec.message());
}

void half_close(socket_type& client) {
  error_code ec;
  client.shutdown(socket_type::shutdown_send, ec);
  if (ec) throw std::runtime_error("client shutdown: " + ec.message());
}

// --- the client scenarios ---------------------------------------------------------------

/// Writes `data` in random-sized chunks (1 byte to 64 KiB), pausing now and then so that
/// the server sees split writes, then half-closes.
asio::awaitable<void> write_in_random_chunks(socket_type& client, const std::string& data) {
  std::mt19937 random(20261126);
  asio::steady_timer timer(client.get_executor());
  std::size_t offset = 0;
  while (offset < data.size()) {
    const std::size_t limit = random() % 2 == 0 ? 100 : 65536;
    const std::size_t size = std::min<std::size_t>(1 + random() % limit, data.size() - offset);
    auto [ec, n] = co_await asio::async_write(client, asio::buffer(data.data() + offset, size),
                                              asio::as_tuple(asio::use_awaitable));
    if (ec) throw std::runtime_error("client write: " + ec.message());
    offset += n;
    if (random() % 16 == 0) {
      timer.expires_after(1ms);
      co_await timer.async_wait(asio::use_awaitable);
    }
  }
  half_close(client);
}

struct big_transfer_result {  // outlives the io_context's run
  std::string received;
  clock_type::time_point ended{};
  error_code end_ec;
  bool writer_done = false;
  std::exception_ptr writer_error;
};

asio::awaitable<void> big_transfer(socket_type& client, const std::string& data, big_transfer_result& out) {
  // The writer runs beside the reader: an echo client that reads only after writing
  // everything would deadlock once both directions' socket buffers are full.
  asio::co_spawn(client.get_executor(), write_in_random_chunks(client, data), [&out](std::exception_ptr e) {
    out.writer_done = true;
    out.writer_error = e;
  });
  co_await read_to_end(client, out.received, out.ended, out.end_ec);
  if (out.writer_error) std::rethrow_exception(out.writer_error);
  if (!out.writer_done) throw std::runtime_error("EOF before the writer finished");
}

asio::awaitable<void> send_half_close_read(socket_type& client, std::string text, std::string& received) {
  if (!text.empty()) co_await write_text(client, text);
  half_close(client);
  clock_type::time_point ended;
  error_code ec;
  co_await read_to_end(client, received, ended, ec);
  if (ec != asio::error::eof) throw std::runtime_error("expected EOF, got " + ec.message());
}

asio::awaitable<void> ping_pong(socket_type& client, int rounds, std::string& received) {
  for (int i = 0; i < rounds; ++i) {
    const std::string text(static_cast<std::size_t>(i + 1), static_cast<char>('a' + i));
    co_await write_text(client, text);
    received += co_await read_exactly(client, text.size());
  }
  half_close(client);
  clock_type::time_point ended;
  error_code ec;
  std::string rest;
  co_await read_to_end(client, rest, ended, ec);
  received += rest;
}

/// Optionally echoes `text`, then waits for the server to close; `idle_for` is the time
/// from the last echo (or the start) to the server's EOF.
asio::awaitable<void> echo_then_wait_for_close(socket_type& client, std::string text, std::string& received,
                                               clock_type::duration& idle_for) {
  if (!text.empty()) {
    co_await write_text(client, text);
    received = co_await read_exactly(client, text.size());
  }
  const auto start = clock_type::now();
  clock_type::time_point ended;
  error_code ec;
  std::string rest;
  co_await read_to_end(client, rest, ended, ec);
  received += rest;
  idle_for = ended - start;
}

/// Writes a lot without ever reading; reports how the write ended.
asio::awaitable<void> write_without_reading(socket_type& client, std::size_t size, error_code& write_ec,
                                            clock_type::duration& took) {
  const std::string data(size, 'w');
  const auto start = clock_type::now();
  auto [ec, n] = co_await asio::async_write(client, asio::buffer(data), asio::as_tuple(asio::use_awaitable));
  (void)n;
  write_ec = ec;
  took = clock_type::now() - start;
}

asio::awaitable<void> write_and_vanish(socket_type& client) {
  co_await write_text(client, std::string(1000, 'v'));
  client.close();
}

}  // namespace

BOOST_AUTO_TEST_SUITE(echo_app)

BOOST_AUTO_TEST_CASE(app_is_named_echo) {
  const prefork::app echo = prefork::make_echo_app();
  BOOST_TEST(echo.name == "echo");
  BOOST_TEST(static_cast<bool>(echo.serve));
}

BOOST_AUTO_TEST_CASE(one_mib_in_random_chunks_comes_back_byte_exact) {
  std::string data(1u << 20, '\0');
  std::mt19937 random(7);
  for (char& c : data) c = static_cast<char>(random() & 0xff);
  harness h;
  h.start();
  big_transfer_result out;
  h.run(big_transfer(*h.client, data, out), 10s);
  BOOST_TEST(out.end_ec == asio::error::eof);
  BOOST_REQUIRE_EQUAL(out.received.size(), data.size());
  BOOST_TEST((out.received == data), "the echoed bytes differ");
  BOOST_TEST(h.worker->requests() == 1u);  // once per connection, not per chunk
}

BOOST_AUTO_TEST_CASE(half_close_gets_everything_back_then_eof) {
  harness h;
  h.start();
  std::string received;
  const log_capture log;
  h.run(send_half_close_read(*h.client, "hello, echo", received));
  BOOST_TEST(log.contains("echo connection ended reason=\"end of stream\""), log.text());
  BOOST_TEST(received == "hello, echo");
  BOOST_TEST(h.worker->requests() == 1u);
}

BOOST_AUTO_TEST_CASE(half_close_without_data_ends_at_once_and_counts_nothing) {
  harness h;
  h.start();
  std::string received;
  h.run(send_half_close_read(*h.client, "", received));
  BOOST_TEST(received.empty());
  BOOST_TEST(h.worker->requests() == 0u);
}

BOOST_AUTO_TEST_CASE(request_is_counted_once_per_connection) {
  harness h;
  h.start();
  std::string received;
  h.run(ping_pong(*h.client, 10, received));
  BOOST_TEST(received == "abbcccddddeeeeeffffffggggggghhhhhhhhiiiiiiiiijjjjjjjjjj");
  BOOST_TEST(h.worker->requests() == 1u);
}

BOOST_AUTO_TEST_CASE(idle_connection_is_closed_after_keepalive) {
  harness h;
  h.cfg.keepalive = 100ms;
  h.start();
  std::string received;
  clock_type::duration idle_for{};
  const log_capture log;
  h.run(echo_then_wait_for_close(*h.client, "abc", received, idle_for));
  BOOST_TEST(log.contains("echo connection ended reason=\"idle timeout\""), log.text());
  BOOST_TEST(received == "abc");
  BOOST_TEST(millis(idle_for) >= 95);
  BOOST_TEST(millis(idle_for) < 2000);
  BOOST_TEST(h.worker->requests() == 1u);
}

BOOST_AUTO_TEST_CASE(silent_connection_is_closed_after_keepalive_and_counts_nothing) {
  harness h;
  h.cfg.keepalive = 100ms;
  h.start();
  std::string received;
  clock_type::duration idle_for{};
  h.run(echo_then_wait_for_close(*h.client, "", received, idle_for));
  BOOST_TEST(received.empty());
  BOOST_TEST(millis(idle_for) >= 95);
  BOOST_TEST(h.worker->requests() == 0u);
}

BOOST_AUTO_TEST_CASE(drain_closes_an_idle_connection) {
  harness h;
  h.cfg.keepalive = 10s;  // would outlive the test: only the drain can end it
  h.start();
  asio::steady_timer drain(h.io, 50ms);
  drain.async_wait([&](error_code) { prefork::detail::worker_drain::begin(*h.worker); });
  std::string received;
  clock_type::duration idle_for{};
  const log_capture log;
  h.run(echo_then_wait_for_close(*h.client, "xy", received, idle_for), 3s);
  BOOST_TEST(log.contains("echo connection ended reason=\"worker draining\""), log.text());
  BOOST_TEST(received == "xy");
  BOOST_TEST(millis(idle_for) < 1000);
}

BOOST_AUTO_TEST_CASE(draining_worker_echoes_bytes_already_sent_then_closes) {
  harness h;
  h.cfg.keepalive = 10s;
  socket_type& client = h.open();
  // Sent before the server runs: it has bytes pending when it first looks, so it is not idle.
  BOOST_REQUIRE_EQUAL(client.write_some(asio::buffer(std::string("pending"))), 7u);
  h.start();
  prefork::detail::worker_drain::begin(*h.worker);
  std::string received;
  clock_type::duration idle_for{};
  h.run(echo_then_wait_for_close(client, "", received, idle_for), 3s);
  BOOST_TEST(received == "pending");
  BOOST_TEST(millis(idle_for) < 1000);
  BOOST_TEST(h.worker->requests() == 1u);
}

BOOST_AUTO_TEST_CASE(client_that_does_not_read_is_closed_after_keepalive) {
  harness h;
  h.cfg.keepalive = 150ms;
  h.start();
  error_code write_ec;
  clock_type::duration took{};
  // Far more than both directions' socket buffers hold: the server's writes block.
  const log_capture log;
  h.run(write_without_reading(*h.client, 16u << 20, write_ec, took), 5s);
  BOOST_TEST(log.contains("echo connection failed error=\"Connection timed out\""), log.text());
  BOOST_TEST(write_ec.failed());  // the server closed: broken pipe
  BOOST_TEST(millis(took) >= 145);
  BOOST_TEST(millis(took) < 3000);
}

BOOST_AUTO_TEST_CASE(client_that_vanishes_ends_the_connection_quietly) {
  harness h;
  h.start();
  const log_capture log;
  h.run(write_and_vanish(*h.client));
  BOOST_TEST(log.contains("echo connection failed error=\"Broken pipe\""), log.text());
  BOOST_TEST(h.worker->requests() == 0u);  // the echo could not be written
}

BOOST_AUTO_TEST_SUITE_END()
