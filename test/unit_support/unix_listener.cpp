#include "unit_support/unix_listener.hpp"

#include <boost/test/unit_test.hpp>

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace prefork::unit_support {

int open_unix_listener(const std::string& path, mode_t mode, int backlog) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  BOOST_REQUIRE(fd >= 0);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::strncpy(address.sun_path, path.c_str(), sizeof address.sun_path - 1);
  BOOST_REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
  BOOST_REQUIRE(::chmod(path.c_str(), mode) == 0);
  BOOST_REQUIRE(::listen(fd, backlog) == 0);
  return fd;
}

full_unix_listener::full_unix_listener(const std::string& path) : listener_(open_unix_listener(path, 0777, 1)) {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::strncpy(address.sun_path, path.c_str(), sizeof address.sun_path - 1);
  for (int i = 0; i < 16; ++i) {
    const int client = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    BOOST_REQUIRE(client >= 0);
    if (::connect(client, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
      const int error = errno;
      ::close(client);
      BOOST_REQUIRE_MESSAGE(error == EAGAIN, "connect " << i << ": " << std::strerror(error));
      return;  // full
    }
    queued_.push_back(client);
  }
  BOOST_FAIL("a listener of backlog 1 took 16 connections without accepting");
}

full_unix_listener::~full_unix_listener() {
  for (int client : queued_) ::close(client);
  ::close(listener_);
}

}  // namespace prefork::unit_support
