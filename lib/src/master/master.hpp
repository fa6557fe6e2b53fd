// The master process: accepts on every listener, hands each connection to a worker over
// its channel, watches workers through Boost.Process v2 handles, restarts, times out and
// stops them, and never loses a connection it accepted.
#pragma once

#include "master/master_stats.hpp"
#include "net/listener.hpp"
#include "prefork/app.hpp"
#include "prefork/config.hpp"
#include "prefork/dispatch.hpp"

#include <boost/system/result.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace prefork::detail {

/// What the master needs from the program around it.
struct master_hooks {
  /// Re-reads the configuration for a reload (HUP, control `reload`); errors name the key.
  std::function<prefork::result<config>()> reread_config;
  /// Lifecycle notifications for a service manager (systemd's sd_notify states such as
  /// "READY=1", "RELOADING=1", "STOPPING=1", "STATUS=..."); may be empty.
  std::function<void(std::string_view state)> notify;
  /// systemd's watchdog: send WATCHDOG=1 this often (half of WATCHDOG_USEC), if set.
  std::optional<std::chrono::microseconds> watchdog_interval;
  /// Called once the master handed its service over to an upgraded successor: from then
  /// on it must not speak for the service (systemd notifications).
  std::function<void()> on_handover;
  /// Called once, when the first generation is ready (an upgrading new master tells its
  /// predecessor through this).
  std::function<void()> on_first_ready;
  /// Makes the dispatch policy instead of the config's `dispatch`, if set.
  std::function<std::unique_ptr<dispatch_policy>()> make_policy;
  /// What USR2 starts: the executable on disk and its arguments (without argv[0]).
  std::string executable;
  std::vector<std::string> arguments;
};

/// The sockets the master serves besides the app's listeners.
struct master_sockets {
  std::vector<listener> listeners;  // the app's, in `bind` order
  std::optional<listener> control;  // the control socket, if any
  std::optional<listener> metrics;  // the Prometheus endpoint, if any
};

/// Runs the master on the calling thread until it stops (TERM, INT, QUIT) and returns the
/// process exit status. Takes ownership of the open listeners and closes them (removing
/// the socket files it created) before returning. Must be called with the handled signals
/// blocked (signal_reader.hpp) and no other thread running, since it forks.
int run_master(std::shared_ptr<const config> settings, const app& application, master_sockets sockets,
               master_hooks hooks);

/// The environment variable through which an upgrading master passes its sockets to its
/// successor: `FD=NAME;FD=NAME...`, NAME being a listener's bind text or `control`.
inline constexpr const char* inherit_environment_variable = "PREFORK_INHERIT";
/// The environment variable naming the pipe on which the successor says `READY`.
inline constexpr const char* upgrade_ready_fd_variable = "PREFORK_UPGRADE_READY_FD";

}  // namespace prefork::detail
