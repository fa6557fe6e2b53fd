#include "net/listener.hpp"
#include "unit_support/preconditions.hpp"

#include "unit_support/child_exit.hpp"
#include "unit_support/temp_dir.hpp"

#include <boost/system/system_error.hpp>
#include <boost/test/unit_test.hpp>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <string>
#include <thread>

namespace {

using prefork::bind_address;
using prefork::errc;
using prefork::detail::close_listener;
using prefork::detail::open_listener;

constexpr int backlog = 16;

using prefork::unit_support::temp_dir;

bind_address unix_address(const std::string& path) {
  bind_address where;
  where.type = bind_address::kind::unix_path;
  where.path = path;
  return where;
}

bind_address tcp_address(const std::string& host, std::uint16_t port) {
  bind_address where;
  where.type = bind_address::kind::tcp;
  where.host = host;
  where.port = port;
  return where;
}

bind_address fd_address(int fd) {
  bind_address where;
  where.type = bind_address::kind::inherited_fd;
  where.fd = fd;
  return where;
}

sockaddr_un make_unix_sockaddr(const std::string& path) {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::memcpy(address.sun_path, path.c_str(), path.size() + 1);
  return address;
}

// A raw socket of `type` bound at `path` (listening when it is a stream socket).
int bind_raw_unix(const std::string& path, int type = SOCK_STREAM) {
  const int fd = ::socket(AF_UNIX, type | SOCK_CLOEXEC, 0);
  BOOST_REQUIRE(fd >= 0);
  const sockaddr_un address = make_unix_sockaddr(path);
  BOOST_REQUIRE(::bind(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) == 0);
  if (type == SOCK_STREAM) BOOST_REQUIRE(::listen(fd, backlog) == 0);
  return fd;
}

bool can_connect_unix(const std::string& path) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  const sockaddr_un address = make_unix_sockaddr(path);
  const bool connected = ::connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) == 0;
  ::close(fd);
  return connected;
}

bool can_connect_tcp(int family, const std::string& host, std::uint16_t port) {
  const int fd = ::socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  bool connected = false;
  if (family == AF_INET) {
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(port);
    ::inet_pton(AF_INET, host.c_str(), &address.sin_addr);
    connected = ::connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) == 0;
  } else {
    sockaddr_in6 address{};
    address.sin6_family = AF_INET6;
    address.sin6_port = htons(port);
    ::inet_pton(AF_INET6, host.c_str(), &address.sin6_addr);
    connected = ::connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) == 0;
  }
  ::close(fd);
  return connected;
}

std::uint16_t port_of(const std::string& address) {
  return static_cast<std::uint16_t>(std::stoi(address.substr(address.rfind(':') + 1)));
}

bool is_nonblocking_cloexec(int fd) {
  return (::fcntl(fd, F_GETFL) & O_NONBLOCK) != 0 && (::fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0;
}

bool fd_is_open(int fd) { return ::fcntl(fd, F_GETFD) != -1; }

ino_t inode_of(const std::string& path) {
  struct stat status {};
  BOOST_REQUIRE(::lstat(path.c_str(), &status) == 0);
  return status.st_ino;
}

std::string read_file(const std::string& path) {
  std::ifstream file(path);
  return {std::istreambuf_iterator<char>(file), std::istreambuf_iterator<char>()};
}

// Closes a listener at the end of a test whatever happens.
struct listener_guard {
  prefork::detail::listener& l;
  ~listener_guard() { close_listener(l); }
};

// Runs `body` in a child process as user and group nobody (65534) and returns its exit
// status, or -1 if it did not finish within 5 s. Used for the permission error paths.
int run_as_nobody(const std::function<int()>& body) {
  const pid_t child = ::fork();
  BOOST_REQUIRE(child >= 0);
  if (child == 0) {
    if (::setgid(65534) != 0 || ::setuid(65534) != 0) ::_exit(100);
    ::_exit(body());
  }
  return prefork::unit_support::wait_bounded(child);
}

// Child-side outcome of open_listener as an exit status: 0 opened, else 10 + errc value,
// or 99 when the message does not contain `expected`.
int open_outcome(const bind_address& where, const std::string& expected) {
  auto result = open_listener(where, backlog, 0660);
  if (result) {
    close_listener(*result);
    return 0;
  }
  if (result.error().message.find(expected) == std::string::npos) return 99;
  return 10 + result.error().code.value();
}

constexpr int outcome_of(errc code) { return 10 + static_cast<int>(code); }

}  // namespace

BOOST_AUTO_TEST_SUITE(listener)

BOOST_AUTO_TEST_CASE(unix_listener_has_socket_mode_and_accepts) {
  temp_dir dir;
  const std::string path = dir / "a.sock";
  const mode_t umask_before = ::umask(022);
  auto result = open_listener(unix_address(path), backlog, 0640);
  const mode_t umask_after = ::umask(umask_before);
  BOOST_REQUIRE_MESSAGE(result, result.error().message);
  auto& l = *result;
  listener_guard guard{l};
  BOOST_TEST(umask_after == mode_t{022});  // restored after bind
  BOOST_TEST(l.address == "unix:" + path);
  BOOST_TEST(l.family == AF_UNIX);
  BOOST_TEST(l.owns_path);
  BOOST_TEST((l.configured == unix_address(path)));
  BOOST_TEST(is_nonblocking_cloexec(l.fd));
  struct stat status {};
  BOOST_REQUIRE(::lstat(path.c_str(), &status) == 0);
  BOOST_TEST(S_ISSOCK(status.st_mode));
  BOOST_TEST((status.st_mode & 0777) == 0640u);
  BOOST_TEST(status.st_ino == l.path_ino);
  BOOST_TEST(status.st_dev == l.path_dev);
  BOOST_TEST(can_connect_unix(path));
}

BOOST_AUTO_TEST_CASE(unix_mode_is_exact_whatever_the_umask) {
  temp_dir dir;
  const std::string path = dir / "open.sock";
  const mode_t umask_before = ::umask(077);
  auto result = open_listener(unix_address(path), backlog, 0666);
  ::umask(umask_before);
  BOOST_REQUIRE_MESSAGE(result, result.error().message);
  listener_guard guard{*result};
  struct stat status {};
  BOOST_REQUIRE(::lstat(path.c_str(), &status) == 0);
  BOOST_TEST((status.st_mode & 0777) == 0666u);
}

BOOST_AUTO_TEST_CASE(control_socket_wrapper_uses_mode_0600) {
  temp_dir dir;
  const std::string path = dir / "preforkd.ctl";
  auto result = prefork::detail::open_unix_listener(path, backlog, 0600);
  BOOST_REQUIRE_MESSAGE(result, result.error().message);
  listener_guard guard{*result};
  struct stat status {};
  BOOST_REQUIRE(::lstat(path.c_str(), &status) == 0);
  BOOST_TEST((status.st_mode & 0777) == 0600u);
  BOOST_TEST(result->address == "unix:" + path);
  BOOST_TEST(can_connect_unix(path));
}

BOOST_AUTO_TEST_CASE(relative_path_is_reported_absolute_and_removed_after_chdir) {
  temp_dir dir;
  std::filesystem::create_directory(dir / "sub");
  const std::filesystem::path previous = std::filesystem::current_path();
  std::filesystem::current_path(dir.path);
  auto result = open_listener(unix_address("./sub/rel.sock"), backlog, 0660);
  std::filesystem::current_path(previous);  // before any REQUIRE can leave the test
  BOOST_REQUIRE_MESSAGE(result, result.error().message);
  auto& l = *result;
  BOOST_TEST(l.address == "unix:" + dir.path + "/sub/rel.sock");
  BOOST_TEST(l.configured.path == "./sub/rel.sock");
  BOOST_TEST(std::filesystem::exists(dir / "sub/rel.sock"));
  close_listener(l);  // from another working directory: uses the absolute path
  BOOST_TEST(!std::filesystem::exists(dir / "sub/rel.sock"));
}

BOOST_AUTO_TEST_CASE(stale_socket_file_is_replaced) {
  temp_dir dir;
  const std::string path = dir / "stale.sock";
  ::close(bind_raw_unix(path));  // closed without unlink: stale
  BOOST_REQUIRE(!can_connect_unix(path));
  auto result = open_listener(unix_address(path), backlog, 0660);
  BOOST_REQUIRE_MESSAGE(result, result.error().message);
  listener_guard guard{*result};
  // (The file system may hand the freed inode number to the new file: no inode check.)
  BOOST_TEST(result->path_ino == inode_of(path));
  BOOST_TEST(result->owns_path);
  BOOST_TEST(can_connect_unix(path));
}

BOOST_AUTO_TEST_CASE(stale_datagram_socket_file_is_replaced) {
  temp_dir dir;
  const std::string path = dir / "stale-dgram.sock";
  ::close(bind_raw_unix(path, SOCK_DGRAM));
  auto result = open_listener(unix_address(path), backlog, 0660);
  BOOST_REQUIRE_MESSAGE(result, result.error().message);
  listener_guard guard{*result};
  BOOST_TEST(can_connect_unix(path));
}

BOOST_AUTO_TEST_CASE(live_socket_is_address_in_use) {
  temp_dir dir;
  const std::string path = dir / "live.sock";
  const int live = bind_raw_unix(path);
  const ino_t live_inode = inode_of(path);
  auto result = open_listener(unix_address(path), backlog, 0660);
  BOOST_TEST(!result);
  if (!result) {
    BOOST_TEST(result.error().code == make_error_code(errc::address_in_use));
    BOOST_TEST(result.error().message == "unix:" + path + ": address in use (another process accepts on it)");
  }
  BOOST_TEST(inode_of(path) == live_inode);
  BOOST_TEST(can_connect_unix(path));
  ::close(live);
}

BOOST_AUTO_TEST_CASE(live_socket_of_another_type_is_address_in_use) {
  temp_dir dir;
  const std::string path = dir / "live-seqpacket.sock";
  const int live = bind_raw_unix(path, SOCK_SEQPACKET);
  BOOST_REQUIRE(::listen(live, backlog) == 0);
  auto result = open_listener(unix_address(path), backlog, 0660);
  BOOST_TEST(!result);
  if (!result) BOOST_TEST(result.error().code == make_error_code(errc::address_in_use));
  ::close(live);
  ::unlink(path.c_str());
}

BOOST_AUTO_TEST_CASE(regular_file_is_not_a_socket_and_kept) {
  temp_dir dir;
  const std::string path = dir / "data.txt";
  std::ofstream(path) << "precious";
  auto result = open_listener(unix_address(path), backlog, 0660);
  BOOST_TEST(!result);
  if (!result) {
    BOOST_TEST(result.error().code == make_error_code(errc::not_a_socket));
    BOOST_TEST(result.error().message.find("unix:" + path + ": ") == 0u);
    BOOST_TEST(prefork::exit_status_for(result.error().code) == 3);
  }
  BOOST_TEST(read_file(path) == "precious");
}

BOOST_AUTO_TEST_CASE(directory_and_symlink_are_not_sockets_and_kept) {
  temp_dir dir;
  std::filesystem::create_directory(dir / "a-directory");
  const int live = bind_raw_unix(dir / "target.sock");
  ::close(live);  // stale target: a symlink to it must still not be touched
  std::filesystem::create_symlink(dir / "target.sock", dir / "link.sock");
  for (const std::string name : {"a-directory", "link.sock"}) {
    auto result = open_listener(unix_address(dir / name), backlog, 0660);
    BOOST_TEST(!result, name);
    if (!result) BOOST_TEST(result.error().code == make_error_code(errc::not_a_socket), name);
  }
  BOOST_TEST(std::filesystem::is_directory(dir / "a-directory"));
  BOOST_TEST(std::filesystem::is_symlink(dir / "link.sock"));
}

BOOST_AUTO_TEST_CASE(missing_directory_is_bind_failed) {
  temp_dir dir;
  const std::string path = dir / "no/such/dir/x.sock";
  auto result = open_listener(unix_address(path), backlog, 0660);
  BOOST_TEST(!result);
  if (!result) {
    BOOST_TEST(result.error().code == make_error_code(errc::bind_failed));
    BOOST_TEST(result.error().message == "unix:" + path + ": directory " + dir.path + "/no/such/dir does not exist");
  }
  BOOST_TEST(!std::filesystem::exists(dir / "no"));  // not created for the user
}

BOOST_AUTO_TEST_CASE(path_through_a_file_is_bind_failed) {
  temp_dir dir;
  std::ofstream(dir / "plain") << "x";
  auto result = open_listener(unix_address(dir / "plain/x.sock"), backlog, 0660);
  BOOST_TEST(!result);
  if (!result) {
    BOOST_TEST(result.error().code == make_error_code(errc::bind_failed));
    BOOST_TEST(result.error().message.find("cannot inspect the path") != std::string::npos);
  }
}

BOOST_AUTO_TEST_CASE(too_long_and_empty_paths_are_bind_failed) {
  temp_dir dir;
  const std::string long_path = dir / std::string(120, 'x');
  auto too_long = open_listener(unix_address(long_path), backlog, 0660);
  BOOST_TEST(!too_long);
  if (!too_long) {
    BOOST_TEST(too_long.error().code == make_error_code(errc::bind_failed));
    BOOST_TEST(too_long.error().message.find("at most 107") != std::string::npos);
  }
  // 107 bytes is the longest that fits.
  const std::string fits = dir.path + "/" + std::string(107 - dir.path.size() - 1, 'y');
  BOOST_REQUIRE(fits.size() == 107u);
  auto fitting = open_listener(unix_address(fits), backlog, 0660);
  BOOST_TEST(fitting.has_value());
  if (fitting) close_listener(*fitting);

  auto empty = open_listener(unix_address(""), backlog, 0660);
  BOOST_TEST(!empty);
  if (!empty) BOOST_TEST(empty.error().code == make_error_code(errc::bind_failed));
  auto nul = open_listener(unix_address(std::string("a\0b", 3)), backlog, 0660);
  BOOST_TEST(!nul);
  if (!nul) BOOST_TEST(nul.error().code == make_error_code(errc::bind_failed));
}

BOOST_AUTO_TEST_CASE(close_listener_removes_our_file_and_is_idempotent) {
  temp_dir dir;
  const std::string path = dir / "ours.sock";
  auto result = open_listener(unix_address(path), backlog, 0660);
  BOOST_REQUIRE_MESSAGE(result, result.error().message);
  auto& l = *result;
  const int fd = l.fd;
  close_listener(l);
  BOOST_TEST(!std::filesystem::exists(std::filesystem::symlink_status(path)));
  BOOST_TEST(l.fd == -1);
  BOOST_TEST(!l.owns_path);
  BOOST_TEST(!fd_is_open(fd));
  close_listener(l);  // again: nothing happens
  BOOST_TEST(l.fd == -1);
}

BOOST_AUTO_TEST_CASE(close_listener_keeps_a_file_that_replaced_ours) {
  temp_dir dir;
  const std::string path = dir / "replaced.sock";
  auto first = open_listener(unix_address(path), backlog, 0660);
  BOOST_REQUIRE_MESSAGE(first, first.error().message);
  // Another process removes our file and puts a regular file there.
  BOOST_REQUIRE(::unlink(path.c_str()) == 0);
  std::ofstream(path) << "theirs";
  close_listener(*first);
  BOOST_TEST(read_file(path) == "theirs");

  // And a socket of a newer listener (same path, another inode) survives an older close.
  BOOST_REQUIRE(::unlink(path.c_str()) == 0);
  auto older = open_listener(unix_address(path), backlog, 0660);
  BOOST_REQUIRE_MESSAGE(older, older.error().message);
  BOOST_REQUIRE(::unlink(path.c_str()) == 0);
  auto newer = open_listener(unix_address(path), backlog, 0660);
  BOOST_REQUIRE_MESSAGE(newer, newer.error().message);
  close_listener(*older);
  BOOST_TEST(std::filesystem::is_socket(path));
  BOOST_TEST(can_connect_unix(path));
  close_listener(*newer);
  BOOST_TEST(!std::filesystem::exists(std::filesystem::symlink_status(path)));
}

BOOST_AUTO_TEST_CASE(close_listener_keeps_the_file_when_ownership_is_given_up) {
  temp_dir dir;
  const std::string path = dir / "handed-over.sock";
  auto result = open_listener(unix_address(path), backlog, 0660);
  BOOST_REQUIRE_MESSAGE(result, result.error().message);
  result->owns_path = false;  // e.g. a new master inherited it (USR2)
  close_listener(*result);
  BOOST_TEST(std::filesystem::is_socket(path));
}

BOOST_AUTO_TEST_CASE(tcp_port_zero_is_resolved_and_second_bind_is_in_use) {
  auto first = open_listener(tcp_address("127.0.0.1", 0), backlog, 0660);
  BOOST_REQUIRE_MESSAGE(first, first.error().message);
  listener_guard guard{*first};
  BOOST_TEST(first->family == AF_INET);
  BOOST_TEST(!first->owns_path);
  BOOST_TEST(is_nonblocking_cloexec(first->fd));
  BOOST_TEST(first->address.rfind("127.0.0.1:", 0) == 0u);
  const std::uint16_t port = port_of(first->address);
  BOOST_TEST(port != 0);
  BOOST_TEST(can_connect_tcp(AF_INET, "127.0.0.1", port));

  auto second = open_listener(tcp_address("127.0.0.1", port), backlog, 0660);
  BOOST_TEST(!second);
  if (!second) {
    BOOST_TEST(second.error().code == make_error_code(errc::address_in_use));
    BOOST_TEST(second.error().message == "127.0.0.1:" + std::to_string(port) + ": address in use");
  }
}

BOOST_AUTO_TEST_CASE(tcp_ipv6_loopback,
                     *boost::unit_test::precondition(prefork::unit_support::ipv6_loopback_available{})) {
  auto result = open_listener(tcp_address("::1", 0), backlog, 0660);
  BOOST_REQUIRE_MESSAGE(result, result.error().message);
  listener_guard guard{*result};
  BOOST_TEST(result->family == AF_INET6);
  BOOST_TEST(result->address.rfind("[::1]:", 0) == 0u);
  const std::uint16_t port = port_of(result->address);
  BOOST_TEST(port != 0);
  BOOST_TEST(can_connect_tcp(AF_INET6, "::1", port));

  auto second = open_listener(tcp_address("::1", port), backlog, 0660);
  BOOST_TEST(!second);
  if (!second) BOOST_TEST(second.error().message == "[::1]:" + std::to_string(port) + ": address in use");
}

BOOST_AUTO_TEST_CASE(tcp_localhost_is_resolved_without_dns) {
  auto result = open_listener(tcp_address("localhost", 0), backlog, 0660);
  BOOST_REQUIRE_MESSAGE(result, result.error().message);
  listener_guard guard{*result};
  const bool loopback = result->address.rfind("127.0.0.1:", 0) == 0 || result->address.rfind("[::1]:", 0) == 0;
  BOOST_TEST(loopback, result->address);
  BOOST_TEST(port_of(result->address) != 0);
}

BOOST_AUTO_TEST_CASE(tcp_bad_hosts_are_bind_failed) {
  auto named = open_listener(tcp_address("example.invalid", 8000), backlog, 0660);
  BOOST_TEST(!named);
  if (!named) {
    BOOST_TEST(named.error().code == make_error_code(errc::bind_failed));
    BOOST_TEST(named.error().message == "example.invalid:8000: host must be a numeric address or localhost");
  }
  // TEST-NET-1: a valid address that is not on this host.
  auto foreign = open_listener(tcp_address("192.0.2.1", 0), backlog, 0660);
  BOOST_TEST(!foreign);
  if (!foreign) {
    BOOST_TEST(foreign.error().code == make_error_code(errc::bind_failed));
    BOOST_TEST(foreign.error().message == "192.0.2.1:0: address not available on this host");
  }
}

BOOST_AUTO_TEST_CASE(fd_adopts_a_listening_tcp_socket) {
  const int raw = ::socket(AF_INET, SOCK_STREAM, 0);  // blocking, no CLOEXEC: as inherited
  BOOST_REQUIRE(raw >= 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  BOOST_REQUIRE(::bind(raw, reinterpret_cast<const sockaddr*>(&address), sizeof address) == 0);
  BOOST_REQUIRE(::listen(raw, backlog) == 0);
  socklen_t length = sizeof address;
  BOOST_REQUIRE(::getsockname(raw, reinterpret_cast<sockaddr*>(&address), &length) == 0);
  const std::uint16_t port = ntohs(address.sin_port);

  auto result = open_listener(fd_address(raw), backlog, 0660);
  BOOST_REQUIRE_MESSAGE(result, result.error().message);
  auto& l = *result;
  BOOST_TEST(l.fd == raw);
  BOOST_TEST(l.family == AF_INET);
  BOOST_TEST(l.address == "127.0.0.1:" + std::to_string(port));
  BOOST_TEST((l.configured == fd_address(raw)));
  BOOST_TEST(!l.owns_path);
  BOOST_TEST(is_nonblocking_cloexec(raw));
  BOOST_TEST(can_connect_tcp(AF_INET, "127.0.0.1", port));
  close_listener(l);
  BOOST_TEST(!fd_is_open(raw));
}

BOOST_AUTO_TEST_CASE(fd_adopted_unix_socket_file_is_never_removed) {
  temp_dir dir;
  const std::string path = dir / "inherited.sock";
  const int raw = bind_raw_unix(path);
  auto result = open_listener(fd_address(raw), backlog, 0660);
  BOOST_REQUIRE_MESSAGE(result, result.error().message);
  BOOST_TEST(result->family == AF_UNIX);
  BOOST_TEST(result->address == "unix:" + path);
  BOOST_TEST(!result->owns_path);
  close_listener(*result);
  BOOST_TEST(std::filesystem::is_socket(path));
  BOOST_TEST(!fd_is_open(raw));
}

BOOST_AUTO_TEST_CASE(fd_that_is_not_a_listening_stream_socket_is_bind_failed) {
  const auto expect_bind_failed = [](int fd, const std::string& reason) {
    auto result = open_listener(fd_address(fd), backlog, 0660);
    BOOST_TEST(!result, reason);
    if (!result) {
      BOOST_TEST(result.error().code == make_error_code(errc::bind_failed), reason);
      BOOST_TEST(result.error().message == "fd://" + std::to_string(fd) + ": " + reason);
    }
  };
  const int not_listening = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  const int datagram = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  int pipe_ends[2];
  BOOST_REQUIRE(::pipe2(pipe_ends, O_CLOEXEC) == 0);
  const int closed = ::dup(pipe_ends[0]);
  ::close(closed);

  expect_bind_failed(not_listening, "socket is not listening");
  expect_bind_failed(datagram, "descriptor is not a stream socket");
  expect_bind_failed(pipe_ends[0], "descriptor is not a socket");
  expect_bind_failed(closed, "not an open descriptor");
  expect_bind_failed(-1, "not a descriptor number");

  // A refused descriptor is left open and unchanged.
  BOOST_TEST(fd_is_open(not_listening));
  BOOST_TEST((::fcntl(not_listening, F_GETFL) & O_NONBLOCK) == 0);
  for (const int fd : {not_listening, datagram, pipe_ends[0], pipe_ends[1]}) ::close(fd);
}

BOOST_AUTO_TEST_CASE(value_throws_system_error_with_code_and_message) {
  temp_dir dir;
  const std::string path = dir / "file";
  std::ofstream(path) << "x";
  auto result = open_listener(unix_address(path), backlog, 0660);
  BOOST_CHECK_EXCEPTION(result.value(), boost::system::system_error, [&](const boost::system::system_error& e) {
    return e.code() == make_error_code(errc::not_a_socket) &&
           std::string(e.what()).find("unix:" + path) != std::string::npos;
  });
}

BOOST_AUTO_TEST_CASE(permission_errors_are_bind_failed,
                     *boost::unit_test::precondition(prefork::unit_support::running_as_root{"to switch to nobody"})) {
  temp_dir dir;
  BOOST_REQUIRE(::chmod(dir.path.c_str(), 0755) == 0);  // root's, searchable by nobody

  // bind in a directory nobody may write.
  const bind_address in_root_dir = unix_address(dir / "denied.sock");
  BOOST_TEST(run_as_nobody([&] { return open_outcome(in_root_dir, "permission denied"); }) ==
             outcome_of(errc::bind_failed));
  BOOST_TEST(!std::filesystem::exists(dir / "denied.sock"));

  // A stale socket file nobody may remove (the directory is not writable for nobody).
  const std::string stale = dir / "stale.sock";
  ::close(bind_raw_unix(stale));
  BOOST_REQUIRE(::chmod(stale.c_str(), 0777) == 0);
  BOOST_TEST(run_as_nobody([&] { return open_outcome(unix_address(stale), "cannot remove the stale socket file"); }) ==
             outcome_of(errc::bind_failed));
  BOOST_TEST(std::filesystem::is_socket(stale));

  // A socket file nobody may connect to: its state cannot be known, so it is kept.
  const std::string guarded = dir / "guarded.sock";
  const int live = bind_raw_unix(guarded);
  BOOST_REQUIRE(::chmod(guarded.c_str(), 0600) == 0);
  BOOST_TEST(run_as_nobody([&] {
               return open_outcome(unix_address(guarded), "cannot check the existing socket file");
             }) == outcome_of(errc::bind_failed));
  BOOST_TEST(std::filesystem::is_socket(guarded));
  ::close(live);

  // A directory nobody may search: the path cannot be inspected.
  std::filesystem::create_directory(dir / "private");
  BOOST_REQUIRE(::chmod((dir / "private").c_str(), 0700) == 0);
  BOOST_TEST(run_as_nobody([&] {
               return open_outcome(unix_address(dir / "private/x.sock"), "cannot inspect the path");
             }) == outcome_of(errc::bind_failed));

  // A privileged port.
  std::ifstream unprivileged_start("/proc/sys/net/ipv4/ip_unprivileged_port_start");
  int first_unprivileged = 1024;
  unprivileged_start >> first_unprivileged;
  if (first_unprivileged > 1) {
    BOOST_TEST(run_as_nobody([&] { return open_outcome(tcp_address("127.0.0.1", 1), "permission denied"); }) ==
               outcome_of(errc::bind_failed));
  } else {
    BOOST_TEST_MESSAGE("every port is unprivileged here: privileged port check skipped");
  }
}

BOOST_AUTO_TEST_SUITE_END()
