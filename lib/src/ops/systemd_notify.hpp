// The systemd notification protocol (sd_notify(3)), spoken directly without libsystemd:
// one datagram of newline-separated KEY=VALUE assignments to the AF_UNIX socket named by
// NOTIFY_SOCKET, plus the watchdog settings of WATCHDOG_USEC / WATCHDOG_PID.
#pragma once

#include <boost/system/error_code.hpp>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <sys/socket.h>
#include <sys/un.h>

namespace prefork::detail {

/// Sends state changes to the service manager. A default-constructed notifier is disabled.
///
/// The environment is read, never modified: NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID
/// stay set, because the new master a USR2 upgrade execs must find NOTIFY_SOCKET (and
/// WATCHDOG_USEC) to take over. Workers are forked, not exec'ed, and never notify. Two
/// consequences for the upgrade: WATCHDOG_PID names the old master, so remove it (or set it
/// to the new pid in the child) in the environment the new master is exec'ed with, else the
/// new master sees a mismatch and sends no WATCHDOG=1; and once the new master announced
/// itself with `MAINPID=<its pid>`, the old master must call disable() so that its own
/// STOPPING=1 does not mark the whole service as stopping.
///
/// No descriptor is held between calls (each notify() opens and closes its own socket, as
/// sd_notify does), so the object may be copied, and a fork leaks nothing.
class systemd_notifier {
 public:
  systemd_notifier() = default;

  /// Reads NOTIFY_SOCKET (an absolute path, or "@name" for an abstract socket), and
  /// WATCHDOG_USEC (a positive decimal count of microseconds) with WATCHDOG_PID (if set, it
  /// must be a pid equal to getpid()). Never fails: an unset or empty NOTIFY_SOCKET gives a
  /// disabled notifier; an unusable NOTIFY_SOCKET (relative, too long for sun_path) gives an
  /// enabled one whose notify() reports the problem; an invalid WATCHDOG_USEC, an invalid
  /// WATCHDOG_PID or a WATCHDOG_PID of another process gives no watchdog.
  static systemd_notifier from_environment();

  /// True when NOTIFY_SOCKET was set (and disable() was not called).
  bool enabled() const noexcept { return enabled_; }

  /// Stops all notifications: notify() becomes a no-op, watchdog_interval() empty. For the
  /// old master after a USR2 upgrade handed the service over to the new one.
  void disable() noexcept;

  /// Sends `state` as one datagram, e.g. "READY=1\nSTATUS=4 workers ready" (see
  /// reloading_message, and STOPPING=1, WATCHDOG=1, MAINPID=N). Never blocks and never
  /// throws. Disabled: does nothing and succeeds. Errors (system category): the errno of
  /// socket() or sendto(), e.g. no_such_file_or_directory or connection_refused when nobody
  /// listens, resource_unavailable_try_again when the manager's queue is full;
  /// invalid_argument for an empty `state` or a NOTIFY_SOCKET that is neither an absolute
  /// path nor "@name"; filename_too_long for one longer than sun_path.
  boost::system::error_code notify(std::string_view state) const;

  /// How often to send WATCHDOG=1: half of WATCHDOG_USEC (at least 1 us), as sd_notify(3)
  /// recommends. Empty when the watchdog is off or the notifier is disabled.
  std::optional<std::chrono::microseconds> watchdog_interval() const noexcept;

 private:
  bool enabled_ = false;
  boost::system::error_code address_error_;  // why NOTIFY_SOCKET cannot be used
  sockaddr_un address_{};
  socklen_t address_length_ = 0;
  std::optional<std::chrono::microseconds> watchdog_interval_;
};

/// "RELOADING=1\nMONOTONIC_USEC=N": sent when a reload starts (systemd 253+ matches it with
/// the time it sent SIGHUP); READY=1 ends the reload.
std::string reloading_message(std::uint64_t monotonic_usec);

/// CLOCK_MONOTONIC in microseconds, the clock MONOTONIC_USEC is expressed in.
std::uint64_t monotonic_usec_now() noexcept;

}  // namespace prefork::detail
