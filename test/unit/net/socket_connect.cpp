// socket_connect (connect_until) against real listeners: a Unix listener whose backlog is full makes the
// connect wait (and fail with backlog_full at the deadline), never succeed falsely; an
// accept lets a waiting connect through; refusals are reported at once; TCP waits for a
// connect in progress. control_client reports a full control backlog as a busy timeout.
#include "prefork/socket_connect.hpp"

#include "prefork/control_client.hpp"
#include "prefork/error.hpp"
#include "unit_support/temp_dir.hpp"
#include "unit_support/unix_listener.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/test/unit_test.hpp>

#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>
#include <vector>

namespace asio = boost::asio;
using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

namespace {

/// A descriptor closed at the end of its scope.
struct fd_guard {
  int fd = -1;
  explicit fd_guard(int descriptor) : fd(descriptor) { BOOST_REQUIRE_MESSAGE(fd >= 0, std::strerror(errno)); }
  fd_guard(fd_guard&& other) noexcept : fd(std::exchange(other.fd, -1)) {}
  fd_guard(const fd_guard&) = delete;
  fd_guard& operator=(const fd_guard&) = delete;
  fd_guard& operator=(fd_guard&&) = delete;
  ~fd_guard() {
    if (fd >= 0) ::close(fd);
  }
};

sockaddr_un unix_address(const std::string& path) {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  BOOST_REQUIRE(path.size() < sizeof address.sun_path);
  std::memcpy(address.sun_path, path.c_str(), path.size() + 1);
  return address;
}

fd_guard unix_client() { return fd_guard(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)); }

boost::system::error_code connect_unix(int fd, const std::string& path, steady::duration within) {
  auto address = unix_address(path);
  return prefork::connect_until(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address,
                                steady::now() + within);
}

/// A connected socket really is connected: a byte can be written to it (a false success
/// fails here with ENOTCONN).
bool writable(int fd) { return ::send(fd, "x", 1, MSG_NOSIGNAL | MSG_DONTWAIT) == 1; }

}  // namespace

BOOST_AUTO_TEST_SUITE(socket_connect)

BOOST_AUTO_TEST_CASE(a_full_unix_backlog_is_never_a_false_success) {
  prefork::unit_support::temp_dir dir;
  const std::string path = dir / "full.sock";
  prefork::unit_support::full_unix_listener listener(path);
  for (int queued : listener.queued()) BOOST_TEST(writable(queued));
  // Every further attempt waits its whole deadline and says why.
  for (int i = 0; i < 3; ++i) {
    fd_guard client = unix_client();
    const auto started = steady::now();
    auto ec = connect_unix(client.fd, path, 50ms);
    BOOST_TEST((ec == prefork::errc::backlog_full), "attempt " << i << ": " << ec.message());
    BOOST_TEST((steady::now() - started >= 50ms), "gave up before its deadline");
  }
}

BOOST_AUTO_TEST_CASE(a_waiting_connect_gets_through_once_the_listener_accepts) {
  prefork::unit_support::temp_dir dir;
  const std::string path = dir / "slow.sock";
  prefork::unit_support::full_unix_listener listener(path);
  std::thread acceptor([&] {
    std::this_thread::sleep_for(100ms);
    pollfd ready{listener.fd(), POLLIN, 0};
    (void)::poll(&ready, 1, 5000);
    const int accepted = ::accept4(listener.fd(), nullptr, nullptr, SOCK_CLOEXEC);
    if (accepted >= 0) ::close(accepted);
  });
  fd_guard client = unix_client();
  auto ec = connect_unix(client.fd, path, 10s);
  acceptor.join();
  BOOST_TEST(!ec, ec.message());
  BOOST_TEST(writable(client.fd), std::strerror(errno));
  // The descriptor is left blocking, as it came.
  BOOST_TEST((::fcntl(client.fd, F_GETFL) & O_NONBLOCK) == 0);
}

BOOST_AUTO_TEST_CASE(refused_and_missing_listeners_are_reported_at_once) {
  prefork::unit_support::temp_dir dir;
  fd_guard missing = unix_client();
  BOOST_TEST((connect_unix(missing.fd, dir / "nothing.sock", 10s) == boost::system::errc::no_such_file_or_directory));

  const std::string stale = dir / "stale.sock";
  ::close(prefork::unit_support::open_unix_listener(stale));  // the file stays, nobody listens
  fd_guard refused = unix_client();
  const auto started = steady::now();
  BOOST_TEST((connect_unix(refused.fd, stale, 10s) == boost::system::errc::connection_refused));
  BOOST_TEST((steady::now() - started < 5s), "a refusal waited for the deadline");
}

BOOST_AUTO_TEST_CASE(a_tcp_connect_in_progress_is_waited_for) {
  asio::io_context io;
  asio::ip::tcp::acceptor acceptor(io, asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  const auto listening = acceptor.local_endpoint();
  asio::ip::tcp::socket client(io);
  auto ec = prefork::connect_until(client, listening, steady::now() + 10s);
  BOOST_TEST(!ec, ec.message());
  BOOST_TEST(client.is_open());
  BOOST_TEST(writable(client.native_handle()));

  // A port nobody listens on any more: refused, and the socket closed again.
  acceptor.close();
  asio::ip::tcp::socket refused(io);
  ec = prefork::connect_until(refused, listening, steady::now() + 10s);
  BOOST_TEST((ec == boost::system::errc::connection_refused), ec.message());
  BOOST_TEST(!refused.is_open());
}

BOOST_AUTO_TEST_CASE(an_asio_unix_socket_waits_like_a_descriptor) {
  prefork::unit_support::temp_dir dir;
  const std::string path = dir / "asio.sock";
  prefork::unit_support::full_unix_listener listener(path);
  asio::io_context io;
  asio::local::stream_protocol::socket socket(io);
  auto ec = prefork::connect_until(socket, asio::local::stream_protocol::endpoint(path), steady::now() + 30ms);
  BOOST_TEST((ec == prefork::errc::backlog_full), ec.message());
  BOOST_TEST(!socket.is_open());
}

BOOST_AUTO_TEST_CASE(control_client_reports_a_full_control_backlog_as_busy) {
  prefork::unit_support::temp_dir dir;
  const std::string path = dir / "ctl.sock";
  prefork::unit_support::full_unix_listener listener(path);
  prefork::control_client client;
  auto result = client.connect(path, 50ms);
  BOOST_REQUIRE(!result);
  BOOST_TEST((result.error().code == prefork::errc::timeout));
  BOOST_TEST(result.error().message.find("busy") != std::string::npos, result.error().message);
  BOOST_TEST(!client.is_open());
}

BOOST_AUTO_TEST_SUITE_END()
