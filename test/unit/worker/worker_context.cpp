// worker_context's drain policies, through connection::wait_for_request on real
// socketpairs: close wakes idle connections, hand_back releases their descriptors to the
// runtime, serve_last leaves them waiting for one last request.
#include "prefork/worker_context.hpp"

#include "prefork/connection.hpp"
#include "worker/worker_drain.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/test/unit_test.hpp>

#include <optional>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

namespace asio = boost::asio;
using prefork::connection;
using prefork::wait_result;
using namespace std::chrono_literals;

namespace {

struct fixture {
  asio::io_context io;
  prefork::config settings = prefork::default_config();
  prefork::worker_context worker{io.get_executor(), settings, 1, 1};
  int client = -1;
  ino_t server_inode = 0;
  std::optional<wait_result> result;

  fixture() {
    int fds[2];
    BOOST_REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) == 0);
    client = fds[0];
    struct stat st {};
    ::fstat(fds[1], &st);
    server_inode = st.st_ino;
    prefork::socket_type socket(io, asio::generic::stream_protocol(AF_UNIX, 0), fds[1]);
    asio::co_spawn(io, wait_once(connection(std::move(socket), 7, worker), this), asio::detached);
  }
  ~fixture() { ::close(client); }

  static asio::awaitable<void> wait_once(connection conn, fixture* f) {
    f->result = co_await conn.wait_for_request(10s);
  }

  /// Runs the loop until the wait finished or 2 s passed.
  void run_until_done() {
    for (int i = 0; i < 200 && !result; ++i) io.run_for(10ms);
    BOOST_REQUIRE_MESSAGE(result.has_value(), "did not finish");
  }
};

}  // namespace

BOOST_AUTO_TEST_SUITE(worker_context)

BOOST_FIXTURE_TEST_CASE(close_policy_wakes_an_idle_connection, fixture) {
  io.run_for(20ms);
  BOOST_TEST(!result.has_value());
  prefork::detail::worker_drain::begin(worker, prefork::worker_context::idle_policy::close);
  run_until_done();
  BOOST_TEST((*result == wait_result::drained));
}

BOOST_FIXTURE_TEST_CASE(hand_back_releases_the_descriptor_with_its_listener, fixture) {
  io.run_for(20ms);
  int handed = -1;
  std::uint32_t listener = 0;
  prefork::detail::worker_drain::begin(worker, prefork::worker_context::idle_policy::hand_back,
                                       [&](int fd, std::uint32_t index) {
                                         handed = fd;
                                         listener = index;
                                       });
  run_until_done();
  BOOST_TEST((*result == wait_result::drained));
  BOOST_REQUIRE(handed >= 0);
  BOOST_TEST(listener == 7u);
  struct stat st {};
  BOOST_REQUIRE(::fstat(handed, &st) == 0);  // still open: the handler did not close it
  BOOST_TEST(st.st_ino == server_inode);
  // The client's bytes are still there for whoever serves it next.
  BOOST_REQUIRE(::write(client, "GET", 3) == 3);
  char buffer[8];
  BOOST_TEST(::read(handed, buffer, sizeof buffer) == 3);
  ::close(handed);
}

BOOST_FIXTURE_TEST_CASE(serve_last_keeps_waiting_for_the_next_request, fixture) {
  io.run_for(20ms);
  prefork::detail::worker_drain::begin(worker, prefork::worker_context::idle_policy::serve_last);
  io.run_for(50ms);
  BOOST_TEST(!result.has_value());
  BOOST_TEST(worker.draining());
  BOOST_REQUIRE(::write(client, "GET", 3) == 3);
  run_until_done();
  BOOST_TEST((*result == wait_result::readable));
}

BOOST_FIXTURE_TEST_CASE(a_wait_that_starts_during_a_close_drain_ends_at_once, fixture) {
  prefork::detail::worker_drain::begin(worker, prefork::worker_context::idle_policy::close);
  run_until_done();
  BOOST_TEST((*result == wait_result::drained));
}

BOOST_FIXTURE_TEST_CASE(a_connection_idle_only_after_a_hand_back_drain_goes_back_too, fixture) {
  // The drain began while this connection was busy (its wait had not started yet).
  int handed = -1;
  prefork::detail::worker_drain::begin(worker, prefork::worker_context::idle_policy::hand_back,
                                       [&](int fd, std::uint32_t) { handed = fd; });
  run_until_done();
  BOOST_TEST((*result == wait_result::drained));
  BOOST_REQUIRE(handed >= 0);
  struct stat st {};
  BOOST_REQUIRE(::fstat(handed, &st) == 0);
  BOOST_TEST(st.st_ino == server_inode);
  ::close(handed);
}

BOOST_AUTO_TEST_SUITE_END()
