#include "ops/systemd_notify.hpp"

#include <cerrno>
#include <charconv>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <limits>
#include <sys/types.h>
#include <system_error>
#include <unistd.h>

namespace prefork::detail {
namespace {

using boost::system::error_code;

error_code errno_code(int value) { return {value, boost::system::system_category()}; }

/// A whole string of decimal digits as an unsigned number; empty on anything else
/// (a sign, spaces, an overflow, nothing at all).
std::optional<std::uint64_t> parse_decimal(std::string_view text) {
  std::uint64_t value = 0;
  if (text.empty()) return std::nullopt;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc{} || end != text.data() + text.size()) return std::nullopt;
  return value;
}

std::optional<std::chrono::microseconds> watchdog_from_environment() {
  const char* usec_text = std::getenv("WATCHDOG_USEC");
  if (usec_text == nullptr) return std::nullopt;
  const auto usec = parse_decimal(usec_text);
  // sd_watchdog_enabled() rejects 0 too; the bound keeps the chrono value from overflowing.
  if (!usec || *usec == 0 || *usec > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
    return std::nullopt;
  }
  if (const char* pid_text = std::getenv("WATCHDOG_PID"); pid_text != nullptr) {
    // The variables were meant for another process (e.g. the master we were exec'ed by).
    const auto pid = parse_decimal(pid_text);
    if (!pid || *pid == 0 || *pid != static_cast<std::uint64_t>(::getpid())) return std::nullopt;
  }
  const auto half = static_cast<std::int64_t>(*usec / 2);
  return std::chrono::microseconds(half > 0 ? half : 1);
}

}  // namespace

systemd_notifier systemd_notifier::from_environment() {
  systemd_notifier notifier;
  const char* socket_text = std::getenv("NOTIFY_SOCKET");
  if (socket_text == nullptr || *socket_text == '\0') return notifier;
  notifier.enabled_ = true;
  notifier.watchdog_interval_ = watchdog_from_environment();

  const std::string_view name(socket_text);
  sockaddr_un& address = notifier.address_;
  address.sun_family = AF_UNIX;
  if (name.front() != '/' && name.front() != '@') {
    notifier.address_error_ = errno_code(EINVAL);
  } else if (name.size() > sizeof(address.sun_path) - (name.front() == '/' ? 1 : 0)) {
    // A path needs room for its terminating NUL; an abstract name has none.
    notifier.address_error_ = errno_code(ENAMETOOLONG);
  } else {
    std::memcpy(address.sun_path, name.data(), name.size());
    std::size_t length = name.size();
    if (name.front() == '@') {
      address.sun_path[0] = '\0';  // abstract namespace: the length counts, no NUL ends it
    } else {
      ++length;  // the NUL terminator (already zero)
    }
    notifier.address_length_ = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + length);
  }
  return notifier;
}

void systemd_notifier::disable() noexcept {
  enabled_ = false;
  watchdog_interval_.reset();
}

error_code systemd_notifier::notify(std::string_view state) const {
  if (!enabled_) return {};
  if (address_error_) return address_error_;
  if (state.empty()) return errno_code(EINVAL);
  // A socket per message, as sd_notify does: nothing to close at fork or exec, and a
  // restarted manager socket is found again. Non-blocking: a full queue is an error, not a stall.
  const int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return errno_code(errno);
  const ssize_t sent = ::sendto(fd, state.data(), state.size(), MSG_NOSIGNAL,
                                reinterpret_cast<const sockaddr*>(&address_), address_length_);
  const int send_errno = errno;
  ::close(fd);
  if (sent < 0) return errno_code(send_errno);
  if (static_cast<std::size_t>(sent) != state.size()) return errno_code(EMSGSIZE);
  return {};
}

std::optional<std::chrono::microseconds> systemd_notifier::watchdog_interval() const noexcept {
  if (!enabled_) return std::nullopt;
  return watchdog_interval_;
}

std::string reloading_message(std::uint64_t monotonic_usec) {
  return "RELOADING=1\nMONOTONIC_USEC=" + std::to_string(monotonic_usec);
}

std::uint64_t monotonic_usec_now() noexcept {
  timespec now{};
  ::clock_gettime(CLOCK_MONOTONIC, &now);
  return static_cast<std::uint64_t>(now.tv_sec) * 1'000'000u + static_cast<std::uint64_t>(now.tv_nsec) / 1000u;
}

}  // namespace prefork::detail
