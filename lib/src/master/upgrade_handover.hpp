// The successor's side of a USR2 upgrade: the sockets the old master passed down
// (PREFORK_INHERIT) are adopted instead of bound, and READY goes back on the pipe named
// by PREFORK_UPGRADE_READY_FD once the first generation serves.
#pragma once

#include "net/listener.hpp"

#include <map>
#include <string>

namespace prefork::detail {

struct upgrade_handover {
  std::map<std::string, int> sockets;  // bind text (or "control") -> inherited descriptor
  int ready_fd = -1;                   // where to say READY, or -1 when not upgrading
};

/// Reads and removes the handover variables from the environment (so workers and later
/// upgrades never see stale ones). Malformed entries are ignored.
upgrade_handover take_upgrade_handover();

/// The listener for `where`: the inherited socket under `name` when there is one (its
/// socket file becomes ours to remove at exit), else a freshly opened one.
prefork::result<listener> adopt_or_open(upgrade_handover& handover, const std::string& name, const bind_address& where,
                                        int backlog, unsigned socket_mode);

/// Closes inherited descriptors nobody claimed (a listener the new file dropped).
void close_unclaimed(upgrade_handover& handover);

/// Tells the old master we serve: writes READY and closes the pipe. No-op otherwise.
void announce_upgrade_ready(upgrade_handover& handover);

}  // namespace prefork::detail
