// Opening and closing the master's listening sockets (Unix, TCP, inherited fd://N) with
// the SPEC's Unix socket hygiene: a stale socket file is replaced, a live one or a path that
// is not a socket is an error, and only the file we created (same inode) is ever removed.
#pragma once

#include "prefork/bind_address.hpp"
#include "prefork/error.hpp"

#include <boost/assert/source_location.hpp>
#include <boost/system/error_code.hpp>
#include <boost/system/result.hpp>

#include <string>
#include <sys/types.h>

namespace prefork::detail {

/// An open listening socket and what is needed to clean it up. Plain data: the fd is owned
/// by whoever holds the struct until close_listener() (or a wrapping Asio acceptor that
/// took the fd; then set `fd = -1` and keep the struct for the path cleanup).
struct listener {
  bind_address configured;  // as configured
  int fd = -1;              // listening socket, O_NONBLOCK | FD_CLOEXEC
  std::string address;      // bound address in bind syntax: "unix:/abs/path", "127.0.0.1:43123", "[::1]:8000"
  int family = 0;           // AF_UNIX / AF_INET / AF_INET6
  bool owns_path = false;   // we created the socket file (unix only); clear it to keep the file (USR2 handover)
  dev_t path_dev = 0;       // the file we created, so that only our own inode is removed
  ino_t path_ino = 0;
};

/// Opens one listener, non-blocking and close-on-exec.
/// - unix:PATH: a relative PATH is relative to the working directory; `address` holds the
///   absolute path. A stale socket file (connect() is refused) is removed and replaced; a
///   live one is address_in_use; an existing path that is not a socket (a symlink included)
///   is not_a_socket and is never touched. A missing parent directory, a path too long for
///   sun_path, or no permission is bind_failed. The file is created with mode `socket_mode`
///   (the process umask is narrowed for the duration of bind(), as systemd does, then the
///   file is chmod-ed), so call it from the master's single thread.
/// - HOST:PORT / [V6]:PORT: HOST is a numeric address or "localhost" (no DNS lookup);
///   SO_REUSEADDR, bind, listen(backlog). A port in use is address_in_use; anything else
///   (no permission, address not local) is bind_failed. Port 0 is resolved in `address`.
/// - fd://N: adopts descriptor N: it must be an open, listening stream socket, else
///   bind_failed and N is left as it was. Once adopted, N belongs to the listener and is
///   switched to non-blocking and close-on-exec; no file is ever removed for it.
/// Between the stale check and bind() another process may bind the path: bind's answer is
/// reported as is. A failure's code is errc::address_in_use, not_a_socket or bind_failed
/// (all exit status 3); its message starts with the configured address, e.g.
/// `unix:run/x.sock: address in use (another process accepts on it)`.
prefork::result<listener> open_listener(const bind_address& where, int backlog, unsigned socket_mode);

/// open_listener on unix:PATH: the control socket gets the same hygiene (mode 0600 there).
prefork::result<listener> open_unix_listener(const std::string& path, int backlog, unsigned socket_mode);

/// Closes the fd (if still >= 0) and, for a Unix listener whose file we created, unlinks
/// the path only if it is still that same inode (lstat dev/ino match): a file another
/// process put there since is left alone. Idempotent; never fails. The check is exact while
/// the socket is open (it pins our inode), so call it before closing an acceptor that took
/// the fd, or let it close the fd itself.
void close_listener(listener& l) noexcept;

}  // namespace prefork::detail
