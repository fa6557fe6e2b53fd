// Socket activation (sd_listen_fds(3)), read directly without libsystemd: the listening
// sockets a service manager passed as descriptors 3, 4, ... with LISTEN_PID, LISTEN_FDS and
// LISTEN_FDNAMES.
#pragma once

#include <boost/system/result.hpp>

#include <string>
#include <vector>

namespace prefork::detail {

/// One descriptor passed by the service manager. The fd is owned by the caller.
struct inherited_socket {
  int fd;            // 3, 4, ... in the manager's order (the order of the .socket unit's Listen lines)
  std::string name;  // its LISTEN_FDNAMES entry (FileDescriptorName=), "unknown" without LISTEN_FDNAMES
};

/// The sockets passed for this process: LISTEN_FDS descriptors from 3 on, when LISTEN_PID is
/// getpid(). Each gets FD_CLOEXEC (so neither workers' execs nor a USR2 successor inherit
/// them by accident). Call it first thing in main, before anything opens a descriptor that
/// could be mistaken for one of them. It does not check that they are listening sockets:
/// adopting them as `fd://N` listeners does.
///
/// In every case, success or error, LISTEN_PID, LISTEN_FDS and LISTEN_FDNAMES are removed
/// from the environment so that no child (worker or exec'ed successor) takes them for its own.
///
/// An empty vector (not an error): LISTEN_PID or LISTEN_FDS unset, LISTEN_PID naming another
/// process, or LISTEN_FDS=0. Errors (generic category), none of which touches a descriptor:
/// invalid_argument for a LISTEN_PID or LISTEN_FDS that is not a decimal number (LISTEN_FDS
/// beyond the descriptor range included), or a LISTEN_FDNAMES whose ':'-separated entry count
/// differs from LISTEN_FDS; bad_file_descriptor when one of the announced descriptors is not
/// open. The caller should treat an error as "cannot listen" (exit status 3).
boost::system::result<std::vector<inherited_socket>> inherited_sockets();

}  // namespace prefork::detail
