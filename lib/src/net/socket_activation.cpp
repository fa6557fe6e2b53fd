#include "net/socket_activation.hpp"

#include <boost/system/errc.hpp>

#include <cerrno>
#include <charconv>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <fcntl.h>
#include <limits>
#include <optional>
#include <string_view>
#include <system_error>
#include <unistd.h>
#include <utility>

namespace prefork::detail {
namespace {

using boost::system::error_code;
namespace errc = boost::system::errc;

constexpr int first_listen_fd = 3;  // SD_LISTEN_FDS_START

std::optional<std::uint64_t> parse_decimal(std::string_view text) {
  std::uint64_t value = 0;
  if (text.empty()) return std::nullopt;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc{} || end != text.data() + text.size()) return std::nullopt;
  return value;
}

// Removes the variables on every return path, as sd_listen_fds(unset_environment = 1) does.
struct environment_cleanup {
  ~environment_cleanup() {
    ::unsetenv("LISTEN_PID");
    ::unsetenv("LISTEN_FDS");
    ::unsetenv("LISTEN_FDNAMES");
  }
};

std::vector<std::string> split_names(std::string_view text) {
  std::vector<std::string> names;
  while (true) {
    const std::size_t colon = text.find(':');
    names.emplace_back(text.substr(0, colon));
    if (colon == std::string_view::npos) break;
    text.remove_prefix(colon + 1);
  }
  return names;
}

}  // namespace

boost::system::result<std::vector<inherited_socket>> inherited_sockets() {
  const environment_cleanup cleanup;
  const char* pid_text = std::getenv("LISTEN_PID");
  const char* count_text = std::getenv("LISTEN_FDS");
  if (pid_text == nullptr || count_text == nullptr) return std::vector<inherited_socket>{};

  const auto pid = parse_decimal(pid_text);
  if (!pid || *pid == 0) return errc::make_error_code(errc::invalid_argument);
  // Meant for another process (the variables leaked from a parent): nothing is ours.
  if (*pid != static_cast<std::uint64_t>(::getpid())) return std::vector<inherited_socket>{};

  const auto count = parse_decimal(count_text);
  if (!count || *count > static_cast<std::uint64_t>(std::numeric_limits<int>::max() - first_listen_fd)) {
    return errc::make_error_code(errc::invalid_argument);
  }
  const int fd_count = static_cast<int>(*count);
  if (fd_count == 0)
    return std::vector<inherited_socket>{};  // LISTEN_FDNAMES is not looked at, as in sd_listen_fds_with_names

  std::vector<std::string> names;
  if (const char* names_text = std::getenv("LISTEN_FDNAMES"); names_text != nullptr) {
    names = split_names(names_text);
    if (names.size() != static_cast<std::size_t>(fd_count)) return errc::make_error_code(errc::invalid_argument);
  } else {
    names.assign(static_cast<std::size_t>(fd_count), "unknown");  // sd_listen_fds_with_names' default
  }

  // All checked before one is changed, so an error leaves every descriptor as it was.
  for (int i = 0; i < fd_count; ++i) {
    if (::fcntl(first_listen_fd + i, F_GETFD) < 0) return error_code(errno, boost::system::generic_category());
  }
  std::vector<inherited_socket> sockets;
  sockets.reserve(static_cast<std::size_t>(fd_count));
  for (int i = 0; i < fd_count; ++i) {
    const int fd = first_listen_fd + i;
    const int flags = ::fcntl(fd, F_GETFD);
    if (flags < 0 || ::fcntl(fd, F_SETFD, flags | FD_CLOEXEC) < 0) {
      return error_code(errno, boost::system::generic_category());
    }
    sockets.push_back({fd, std::move(names[static_cast<std::size_t>(i)])});
  }
  return sockets;
}

}  // namespace prefork::detail
