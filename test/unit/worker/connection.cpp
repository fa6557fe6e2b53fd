// connection on real socketpairs: a bare descriptor read and written without the reactor,
// registered on the first socket() call, owned (closed) on every path, moved safely.
#include "prefork/connection.hpp"

#include "prefork/config.hpp"
#include "prefork/worker_context.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/test/unit_test.hpp>

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <optional>
#include <string>
#include <string_view>

namespace asio = boost::asio;

using namespace std::chrono_literals;

namespace {

bool descriptor_open(int fd) { return ::fcntl(fd, F_GETFD) != -1; }

struct fixture {
  asio::io_context io;
  prefork::config settings = prefork::default_config();
  prefork::worker_context worker{io.get_executor(), settings, 1, 1};
  int client = -1;
  int server = -1;

  fixture() {
    int fds[2];
    BOOST_REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) == 0);
    client = fds[0];
    server = fds[1];
  }
  ~fixture() {
    if (client >= 0) ::close(client);
  }

  /// A connection owning `server`, not registered with the reactor.
  prefork::connection bare() {
    return prefork::connection(server, asio::generic::stream_protocol(AF_UNIX, 0), io.get_executor(), 0, worker);
  }

  void send(std::string_view text) const {
    BOOST_REQUIRE(::write(client, text.data(), text.size()) == static_cast<ssize_t>(text.size()));
  }
};

}  // namespace

BOOST_AUTO_TEST_SUITE(connection)

BOOST_FIXTURE_TEST_CASE(try_read_some_says_would_block_then_reads_then_eof, fixture) {
  prefork::connection conn = bare();
  std::array<char, 16> buffer{};
  boost::system::error_code ec;
  BOOST_TEST(conn.try_read_some(asio::buffer(buffer), ec) == 0u);
  BOOST_TEST((ec == asio::error::would_block));

  send("hello");
  BOOST_TEST(conn.available() == 5u);
  BOOST_TEST(conn.try_read_some(asio::buffer(buffer), ec) == 5u);
  BOOST_TEST(!ec);
  BOOST_TEST(std::string_view(buffer.data(), 5) == "hello");

  ::shutdown(client, SHUT_WR);
  BOOST_TEST(conn.try_read_some(asio::buffer(buffer), ec) == 0u);
  BOOST_TEST((ec == asio::error::eof));
  BOOST_TEST(!conn.registered(), "nothing of this needed the reactor");
}

BOOST_FIXTURE_TEST_CASE(try_write_some_gathers_and_reports_a_gone_peer, fixture) {
  prefork::connection conn = bare();
  const std::array<asio::const_buffer, 2> parts{asio::buffer(std::string_view("head,")),
                                                asio::buffer(std::string_view("body"))};
  boost::system::error_code ec;
  BOOST_TEST(conn.try_write_some(parts, ec) == 9u);
  BOOST_TEST(!ec);
  std::array<char, 16> got{};
  BOOST_TEST(::read(client, got.data(), got.size()) == 9);
  BOOST_TEST(std::string_view(got.data(), 9) == "head,body");

  ::close(client);
  client = -1;
  // No SIGPIPE (the test would die of it): an error value instead.
  BOOST_TEST(conn.try_write_some(parts, ec) == 0u);
  BOOST_TEST((ec == asio::error::broken_pipe || ec == asio::error::connection_reset), ec.message());
}

BOOST_FIXTURE_TEST_CASE(a_full_socket_buffer_is_would_block, fixture) {
  prefork::connection conn = bare();
  const std::string chunk(64 * 1024, 'x');
  const std::array<asio::const_buffer, 1> parts{asio::buffer(chunk)};
  boost::system::error_code ec;
  std::size_t total = 0;
  for (int i = 0; i < 1000 && !ec; ++i) total += conn.try_write_some(parts, ec);
  BOOST_TEST((ec == asio::error::would_block), ec.message());
  BOOST_TEST(total > 0u);
}

BOOST_FIXTURE_TEST_CASE(socket_registers_once_and_serves_async_operations, fixture) {
  prefork::connection conn = bare();
  BOOST_TEST(conn.native_handle() == server);
  prefork::socket_type& socket = conn.socket();
  BOOST_TEST(conn.registered());
  BOOST_TEST(&conn.socket() == &socket);
  BOOST_TEST(socket.native_handle() == server);
  BOOST_TEST(conn.native_handle() == server);

  std::optional<std::string> read;
  asio::co_spawn(
      io,
      [](prefork::socket_type& s, std::optional<std::string>& out) -> asio::awaitable<void> {
        std::array<char, 16> buffer{};
        auto [ec, n] = co_await s.async_read_some(asio::buffer(buffer), asio::as_tuple(asio::use_awaitable));
        out = ec ? ec.message() : std::string(buffer.data(), n);
      }(socket, read),
      asio::detached);
  send("ping");
  for (int i = 0; i < 200 && !read; ++i) io.run_for(10ms);
  BOOST_REQUIRE_MESSAGE(read.has_value(), "did not finish");
  BOOST_TEST(*read == "ping");
}

BOOST_FIXTURE_TEST_CASE(a_descriptor_that_cannot_be_registered_leaves_a_closed_socket, fixture) {
  ::close(server);
  // A number no descriptor has: epoll_ctl refuses it (a freshly closed one could be taken
  // by the event loop's own descriptors, created lazily, and closing it would break them).
  constexpr int never_opened = 999999;
  BOOST_REQUIRE(!descriptor_open(never_opened));
  prefork::connection conn(never_opened, asio::generic::stream_protocol(AF_UNIX, 0), io.get_executor(), 0, worker);
  BOOST_TEST(!conn.socket().is_open());
  BOOST_TEST(conn.native_handle() == -1);
  std::array<char, 4> buffer{};
  boost::system::error_code ec;
  conn.socket().read_some(asio::buffer(buffer), ec);
  BOOST_TEST((ec == asio::error::bad_descriptor), ec.message());
}

BOOST_FIXTURE_TEST_CASE(the_connection_owns_its_descriptor_on_every_path, fixture) {
  {
    prefork::connection conn = bare();
    prefork::connection moved(std::move(conn));  // the moved-from one must not close it
    BOOST_TEST(descriptor_open(server));
    BOOST_TEST(moved.native_handle() == server);
  }
  BOOST_TEST(!descriptor_open(server), "an unregistered descriptor is closed with its connection");

  int fds[2];
  BOOST_REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) == 0);
  ::close(fds[0]);
  prefork::connection target(fds[1], asio::generic::stream_protocol(AF_UNIX, 0), io.get_executor(), 0, worker);
  target.close();
  BOOST_TEST(target.native_handle() == -1);
  BOOST_TEST(!descriptor_open(fds[1]));
  target.close();  // idempotent

  BOOST_REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) == 0);
  ::close(fds[0]);
  target = prefork::connection(fds[1], asio::generic::stream_protocol(AF_UNIX, 0), io.get_executor(), 0, worker);
  BOOST_TEST(target.native_handle() == fds[1]);
  target.cancel();  // nothing pending before registration: harmless
  target.socket();
  target.close();
  BOOST_TEST(!descriptor_open(fds[1]), "a registered descriptor is closed too");
}

BOOST_AUTO_TEST_SUITE_END()
