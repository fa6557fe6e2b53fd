#include "prefork/socket_connect.hpp"

#include "prefork/error.hpp"

#include <boost/asio/error.hpp>

#include <algorithm>
#include <cerrno>
#include <fcntl.h>
#include <poll.h>
#include <thread>

namespace prefork {

namespace {

using steady = std::chrono::steady_clock;

boost::system::error_code errno_code(int error) { return {error, boost::system::system_category()}; }

int milliseconds_until(steady::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - steady::now());
  // Round up: poll(0) would spin the last fraction of a millisecond.
  return static_cast<int>(std::clamp<std::chrono::milliseconds::rep>(left.count() + 1, 0, 60 * 60 * 1000));
}

/// Waits until `fd` is writable (the connect finished, well or badly) or the deadline passes.
boost::system::error_code wait_connected(int fd, steady::time_point deadline) {
  for (;;) {
    if (steady::now() >= deadline) return boost::asio::error::timed_out;
    pollfd entry{fd, POLLOUT, 0};
    const int ready = ::poll(&entry, 1, milliseconds_until(deadline));
    if (ready < 0 && errno == EINTR) continue;
    if (ready < 0) return errno_code(errno);
    if (ready > 0) return finish_connect(fd);
  }
}

/// Puts `fd` in non-blocking mode for its lifetime and restores the flags it had.
class nonblocking_scope {
 public:
  explicit nonblocking_scope(int fd) noexcept : fd_(fd), flags_(::fcntl(fd, F_GETFL)) {
    if (flags_ >= 0 && (flags_ & O_NONBLOCK) == 0) (void)::fcntl(fd_, F_SETFL, flags_ | O_NONBLOCK);
  }
  ~nonblocking_scope() {
    if (flags_ >= 0 && (flags_ & O_NONBLOCK) == 0) (void)::fcntl(fd_, F_SETFL, flags_);
  }
  nonblocking_scope(const nonblocking_scope&) = delete;
  nonblocking_scope& operator=(const nonblocking_scope&) = delete;
  bool ok() const noexcept { return flags_ >= 0; }

 private:
  int fd_;
  int flags_;
};

}  // namespace

connect_attempt try_connect(int fd, const sockaddr* address, socklen_t length) noexcept {
  int rc = 0;
  do rc = ::connect(fd, address, length);
  while (rc != 0 && errno == EINTR);
  if (rc == 0) return {connect_progress::connected, {}};
  const int error = errno;
  // For a Unix stream socket EAGAIN means "the backlog is full", not "in progress"
  // (unix_stream_connect); for TCP it means no local port was free, a real failure.
  if (error == EAGAIN && address->sa_family == AF_UNIX) return {connect_progress::backlog_full, {}};
  if (error == EINPROGRESS) return {connect_progress::in_progress, {}};
  return {connect_progress::failed, errno_code(error)};
}

boost::system::error_code finish_connect(int fd) noexcept {
  int error = 0;
  socklen_t size = sizeof error;
  if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &size) != 0) return errno_code(errno);
  return error == 0 ? boost::system::error_code() : errno_code(error);
}

boost::system::error_code connect_until(int fd, const sockaddr* address, socklen_t length,
                                        steady::time_point deadline) noexcept {
  nonblocking_scope nonblocking(fd);
  if (!nonblocking.ok()) return errno_code(errno);
  auto pause = std::chrono::milliseconds(1);
  for (;;) {
    const connect_attempt attempt = try_connect(fd, address, length);
    switch (attempt.progress) {
      case connect_progress::connected: return {};
      case connect_progress::failed: return attempt.error;
      case connect_progress::in_progress: return wait_connected(fd, deadline);
      case connect_progress::backlog_full: break;
    }
    const auto now = steady::now();
    if (now >= deadline) return errc::backlog_full;
    // A full backlog gives no readiness to wait for: the listener must accept first.
    std::this_thread::sleep_for(std::min<steady::duration>(pause, deadline - now));
    pause = std::min(pause * 2, std::chrono::milliseconds(16));
  }
}

}  // namespace prefork
