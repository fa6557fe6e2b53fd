#include "net/listener.hpp"

#include <boost/system/system_error.hpp>
#include <boost/throw_exception.hpp>

#include <arpa/inet.h>
#include <fcntl.h>
#include <net/if.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string_view>
#include <system_error>
#include <utility>

namespace prefork::detail {
namespace {

using listen_result = prefork::result<listener>;

constexpr std::string_view unix_prefix = "unix:";

// Owns a descriptor until release(): every early return of open_* closes what it opened.
class unique_fd {
 public:
  explicit unique_fd(int fd) noexcept : fd_(fd) {}
  unique_fd(const unique_fd&) = delete;
  unique_fd& operator=(const unique_fd&) = delete;
  ~unique_fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const noexcept { return fd_; }
  int release() noexcept { return std::exchange(fd_, -1); }

 private:
  int fd_;
};

// The configured address as the user wrote it, to start every message with.
std::string describe(const bind_address& where) {
  switch (where.type) {
    case bind_address::kind::unix_path: return std::string(unix_prefix) + where.path;
    case bind_address::kind::tcp:
      if (where.host.find(':') != std::string::npos) return "[" + where.host + "]:" + std::to_string(where.port);
      return where.host + ":" + std::to_string(where.port);
    case bind_address::kind::inherited_fd: return "fd://" + std::to_string(where.fd);
  }
  return "?";
}

std::string errno_text(int err) { return std::system_category().message(err); }

failure make_error(errc code, const bind_address& where, std::string_view what) {
  return failure{make_error_code(code), describe(where) + ": " + std::string(what)};
}

// The bound address of a socket in bind syntax (unix:/path, unix:@abstract, 1.2.3.4:80,
// [::1]:80, [fe80::1%eth0]:80).
std::string format_address(const sockaddr_storage& storage, socklen_t length) {
  switch (storage.ss_family) {
    case AF_INET: {
      const auto& in = reinterpret_cast<const sockaddr_in&>(storage);
      std::array<char, INET_ADDRSTRLEN> text{};
      ::inet_ntop(AF_INET, &in.sin_addr, text.data(), text.size());
      return std::string(text.data()) + ":" + std::to_string(ntohs(in.sin_port));
    }
    case AF_INET6: {
      const auto& in6 = reinterpret_cast<const sockaddr_in6&>(storage);
      std::array<char, INET6_ADDRSTRLEN> text{};
      ::inet_ntop(AF_INET6, &in6.sin6_addr, text.data(), text.size());
      std::string host = text.data();
      if (in6.sin6_scope_id != 0) {
        std::array<char, IF_NAMESIZE> name{};
        host += '%';
        host += ::if_indextoname(in6.sin6_scope_id, name.data()) ? std::string(name.data())
                                                                 : std::to_string(in6.sin6_scope_id);
      }
      return "[" + host + "]:" + std::to_string(ntohs(in6.sin6_port));
    }
    case AF_UNIX: {
      const auto& un = reinterpret_cast<const sockaddr_un&>(storage);
      const auto header = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path));
      if (length <= header) return std::string(unix_prefix);  // unnamed
      const std::size_t size = length - header;
      if (un.sun_path[0] == '\0') return std::string(unix_prefix) + "@" + std::string(un.sun_path + 1, size - 1);
      return std::string(unix_prefix) + std::string(un.sun_path, ::strnlen(un.sun_path, size));
    }
    default: return "family " + std::to_string(storage.ss_family);
  }
}

// `path` made absolute against the working directory, with "." and empty components
// dropped; ".." is kept because collapsing it lexically is wrong across symlinks.
std::string absolute_path(const std::string& path, std::error_code& ec) {
  const std::filesystem::path absolute = std::filesystem::absolute(path, ec);
  if (ec) return {};
  std::filesystem::path tidy;
  for (const auto& part : absolute) {
    if (part.empty() || part == ".") continue;
    tidy /= part;
  }
  return tidy.string();
}

enum class socket_file_state { live, stale, gone, unknown };

// Is somebody accepting on the socket file at `address`? connect() tells: refused means
// nobody holds it (stale); success or a full backlog (EAGAIN) means live. A socket of
// another type answers EPROTOTYPE, so each type is tried.
socket_file_state probe_socket_file(const sockaddr_un& address, int& error) {
  for (const int type : {SOCK_STREAM, SOCK_SEQPACKET, SOCK_DGRAM}) {
    unique_fd probe(::socket(AF_UNIX, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (probe.get() < 0) {
      error = errno;
      return socket_file_state::unknown;
    }
    if (::connect(probe.get(), reinterpret_cast<const sockaddr*>(&address), sizeof address) == 0) {
      return socket_file_state::live;
    }
    switch (errno) {
      case EAGAIN:
      case EINPROGRESS: return socket_file_state::live;
      case ECONNREFUSED: return socket_file_state::stale;
      case ENOENT: return socket_file_state::gone;
      case EPROTOTYPE: continue;
      default: error = errno; return socket_file_state::unknown;
    }
  }
  error = EPROTOTYPE;
  return socket_file_state::unknown;
}

listen_result open_unix(const bind_address& where, int backlog, unsigned socket_mode) {
  const std::string& path = where.path;
  if (path.empty()) return make_error(errc::bind_failed, where, "empty socket path");
  if (path.find('\0') != std::string::npos)
    return make_error(errc::bind_failed, where, "socket path contains a NUL byte");
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  if (path.size() >= sizeof address.sun_path) {
    return make_error(errc::bind_failed, where,
                      "socket path is " + std::to_string(path.size()) + " bytes, a Unix socket allows at most " +
                          std::to_string(sizeof address.sun_path - 1));
  }
  std::memcpy(address.sun_path, path.data(), path.size());

  std::error_code cwd_error;
  const std::string absolute = absolute_path(path, cwd_error);
  if (cwd_error)
    return make_error(errc::bind_failed, where, "cannot resolve the working directory: " + cwd_error.message());

  struct stat existing {};
  if (::lstat(path.c_str(), &existing) == 0) {
    // A symlink, even to a socket, is "not a socket": we never delete what we did not create.
    if (!S_ISSOCK(existing.st_mode)) {
      return make_error(errc::not_a_socket, where, "path exists and is not a socket (left untouched)");
    }
    int probe_error = 0;
    switch (probe_socket_file(address, probe_error)) {
      case socket_file_state::live:
        return make_error(errc::address_in_use, where, "address in use (another process accepts on it)");
      case socket_file_state::unknown:
        return make_error(errc::bind_failed, where,
                          "cannot check the existing socket file: " + errno_text(probe_error));
      case socket_file_state::gone: break;
      case socket_file_state::stale: {
        // Remove it only if it is still the file we probed; if it changed, bind() will say.
        struct stat again {};
        if (::lstat(path.c_str(), &again) == 0 && S_ISSOCK(again.st_mode) && again.st_dev == existing.st_dev &&
            again.st_ino == existing.st_ino && ::unlink(path.c_str()) != 0 && errno != ENOENT) {
          return make_error(errc::bind_failed, where, "cannot remove the stale socket file: " + errno_text(errno));
        }
        break;
      }
    }
  } else if (errno != ENOENT) {
    return make_error(errc::bind_failed, where, "cannot inspect the path: " + errno_text(errno));
  }

  unique_fd socket(::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (socket.get() < 0) return make_error(errc::bind_failed, where, "socket: " + errno_text(errno));

  // The file is created with the final mode (as systemd does), so nobody can connect in the
  // moment between bind() and chmod(); chmod() then sets it exactly.
  const mode_t previous_umask = ::umask(static_cast<mode_t>(~socket_mode & 0777));
  const int bind_status = ::bind(socket.get(), reinterpret_cast<const sockaddr*>(&address), sizeof address);
  const int bind_errno = errno;
  ::umask(previous_umask);
  if (bind_status != 0) {
    switch (bind_errno) {
      case EADDRINUSE: return make_error(errc::address_in_use, where, "address in use");
      case ENOENT: {
        const std::string directory = std::filesystem::path(absolute).parent_path().string();
        return make_error(errc::bind_failed, where, "directory " + directory + " does not exist");
      }
      case ENOTDIR: return make_error(errc::bind_failed, where, "a component of the path is not a directory");
      case EACCES: return make_error(errc::bind_failed, where, "permission denied");
      default: return make_error(errc::bind_failed, where, "bind: " + errno_text(bind_errno));
    }
  }

  listener result;
  result.configured = where;
  result.address = std::string(unix_prefix) + absolute;
  result.family = AF_UNIX;
  struct stat created {};
  if (::lstat(path.c_str(), &created) != 0) {
    // Someone removed it already; we cannot know which inode is ours, so we claim none.
    return make_error(errc::bind_failed, where, "socket file vanished after bind: " + errno_text(errno));
  }
  result.owns_path = true;
  result.path_dev = created.st_dev;
  result.path_ino = created.st_ino;
  result.fd = socket.release();

  if (::chmod(path.c_str(), static_cast<mode_t>(socket_mode & 07777)) != 0) {
    const int err = errno;
    close_listener(result);
    return make_error(errc::bind_failed, where, "chmod: " + errno_text(err));
  }
  if (::listen(result.fd, backlog) != 0) {
    const int err = errno;
    close_listener(result);
    return make_error(errc::bind_failed, where, "listen: " + errno_text(err));
  }
  return result;
}

// One bind+listen attempt on a resolved address; fills `error` on failure.
int try_tcp_address(const addrinfo& candidate, int backlog, int& error) {
  unique_fd socket(
      ::socket(candidate.ai_family, candidate.ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, candidate.ai_protocol));
  if (socket.get() < 0) {
    error = errno;
    return -1;
  }
  const int one = 1;
  if (::setsockopt(socket.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
      ::bind(socket.get(), candidate.ai_addr, candidate.ai_addrlen) != 0 || ::listen(socket.get(), backlog) != 0) {
    error = errno;
    return -1;
  }
  return socket.release();
}

failure tcp_error(const bind_address& where, int err) {
  switch (err) {
    // With SO_REUSEADDR Linux may accept the bind and refuse only listen(): same meaning.
    case EADDRINUSE: return make_error(errc::address_in_use, where, "address in use");
    case EACCES: return make_error(errc::bind_failed, where, "permission denied");
    case EADDRNOTAVAIL: return make_error(errc::bind_failed, where, "address not available on this host");
    default: return make_error(errc::bind_failed, where, "bind: " + errno_text(err));
  }
}

listen_result open_tcp(const bind_address& where, int backlog) {
  // Numeric hosts only, plus "localhost" (answered by /etc/hosts): no DNS lookup that
  // could block the master's start.
  const bool named_localhost = where.host == "localhost";
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV | (named_localhost ? 0 : AI_NUMERICHOST);
  const std::string port = std::to_string(where.port);
  addrinfo* resolved = nullptr;
  const int gai_status =
      ::getaddrinfo(where.host.empty() ? nullptr : where.host.c_str(), port.c_str(), &hints, &resolved);
  if (gai_status != 0) {
    if (gai_status == EAI_NONAME && !named_localhost) {
      return make_error(errc::bind_failed, where, "host must be a numeric address or localhost");
    }
    return make_error(errc::bind_failed, where, std::string("cannot resolve host: ") + ::gai_strerror(gai_status));
  }
  const std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> resolved_owner(resolved, &::freeaddrinfo);

  // "localhost" may resolve to ::1 and 127.0.0.1: the first that binds wins. The error
  // reported is the first one, or "address in use" if any candidate said so.
  int first_error = 0;
  for (const addrinfo* candidate = resolved; candidate != nullptr; candidate = candidate->ai_next) {
    int error = 0;
    const int fd = try_tcp_address(*candidate, backlog, error);
    if (fd < 0) {
      if (first_error == 0 || error == EADDRINUSE) first_error = error;
      continue;
    }
    listener result;
    result.configured = where;
    result.fd = fd;
    result.family = candidate->ai_family;
    sockaddr_storage bound{};
    socklen_t length = sizeof bound;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &length) != 0) {
      const int err = errno;
      close_listener(result);
      return make_error(errc::bind_failed, where, "getsockname: " + errno_text(err));
    }
    result.address = format_address(bound, length);
    return result;
  }
  return tcp_error(where, first_error == 0 ? EADDRNOTAVAIL : first_error);
}

listen_result adopt_fd(const bind_address& where) {
  const int fd = where.fd;
  if (fd < 0) return make_error(errc::bind_failed, where, "not a descriptor number");
  const int status_flags = ::fcntl(fd, F_GETFL);
  if (status_flags < 0) return make_error(errc::bind_failed, where, "not an open descriptor");
  int type = 0;
  socklen_t length = sizeof type;
  if (::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &length) != 0) {
    const int err = errno;
    if (err == ENOTSOCK) return make_error(errc::bind_failed, where, "descriptor is not a socket");
    return make_error(errc::bind_failed, where, "getsockopt(SO_TYPE): " + errno_text(err));
  }
  if (type != SOCK_STREAM) return make_error(errc::bind_failed, where, "descriptor is not a stream socket");
  int accepting = 0;
  length = sizeof accepting;
  if (::getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &accepting, &length) != 0) {
    return make_error(errc::bind_failed, where, "getsockopt(SO_ACCEPTCONN): " + errno_text(errno));
  }
  if (accepting == 0) return make_error(errc::bind_failed, where, "socket is not listening");
  sockaddr_storage bound{};
  length = sizeof bound;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &length) != 0) {
    return make_error(errc::bind_failed, where, "getsockname: " + errno_text(errno));
  }
  const int descriptor_flags = ::fcntl(fd, F_GETFD);
  if (::fcntl(fd, F_SETFL, status_flags | O_NONBLOCK) != 0 || descriptor_flags < 0 ||
      ::fcntl(fd, F_SETFD, descriptor_flags | FD_CLOEXEC) != 0) {
    return make_error(errc::bind_failed, where, "fcntl: " + errno_text(errno));
  }
  listener result;
  result.configured = where;
  result.fd = fd;
  result.family = bound.ss_family;
  result.address = format_address(bound, length);
  return result;  // owns_path stays false: an inherited socket's file is never removed
}

}  // namespace

prefork::result<listener> open_listener(const bind_address& where, int backlog, unsigned socket_mode) {
  switch (where.type) {
    case bind_address::kind::unix_path: return open_unix(where, backlog, socket_mode);
    case bind_address::kind::tcp: return open_tcp(where, backlog);
    case bind_address::kind::inherited_fd: return adopt_fd(where);
  }
  return make_error(errc::bind_failed, where, "unknown address kind");
}

prefork::result<listener> open_unix_listener(const std::string& path, int backlog, unsigned socket_mode) {
  bind_address where;
  where.type = bind_address::kind::unix_path;
  where.path = path;
  return open_unix(where, backlog, socket_mode);
}

void close_listener(listener& l) noexcept {
  if (l.owns_path) {
    l.owns_path = false;
    // The absolute path, so that a chdir since opening does not matter. A file that is not
    // our inode any more (replaced by another process, or a new master) is left alone.
    const std::string_view address = l.address;
    if (address.substr(0, unix_prefix.size()) == unix_prefix) {
      const std::string path(address.substr(unix_prefix.size()));
      struct stat current {};
      if (::lstat(path.c_str(), &current) == 0 && S_ISSOCK(current.st_mode) && current.st_dev == l.path_dev &&
          current.st_ino == l.path_ino) {
        ::unlink(path.c_str());
      }
    }
  }
  if (l.fd >= 0) {
    ::close(l.fd);
    l.fd = -1;
  }
}

}  // namespace prefork::detail
