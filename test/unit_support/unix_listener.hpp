// A listening Unix socket made the way the master makes its control socket, for unit
// tests of what serves or connects to one.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

namespace prefork::unit_support {

/// A non-blocking, close-on-exec Unix stream socket bound at `path` (file mode `mode`)
/// and listening; the caller owns the descriptor. Fails the test (BOOST_REQUIRE) on error.
int open_unix_listener(const std::string& path, mode_t mode = 0777, int backlog = 64);

/// A Unix listener at `path` with backlog 1 that never accepts, its queue filled by
/// connected clients (held until destruction): the next connect(2) gets EAGAIN.
class full_unix_listener {
 public:
  explicit full_unix_listener(const std::string& path);
  ~full_unix_listener();
  full_unix_listener(const full_unix_listener&) = delete;
  full_unix_listener& operator=(const full_unix_listener&) = delete;

  int fd() const noexcept { return listener_; }
  /// The clients that got into the queue (each can write: they really are connected).
  const std::vector<int>& queued() const noexcept { return queued_; }

 private:
  int listener_;
  std::vector<int> queued_;
};

}  // namespace prefork::unit_support
