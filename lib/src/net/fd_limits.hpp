// Descriptor budget of the master: raising RLIMIT_NOFILE at start, and counting or listing
// a process's open descriptors through /proc/PID/fd (diagnostics, leak checks in tests).
#pragma once

#include <boost/system/result.hpp>

#include <cstddef>
#include <cstdint>
#include <string>
#include <sys/resource.h>
#include <sys/types.h>
#include <utility>
#include <vector>

namespace prefork::detail {

/// Raises the soft RLIMIT_NOFILE to the hard limit (to fs.nr_open when the hard limit is
/// unlimited) and returns the new soft limit; a soft limit already there is returned as is.
/// Errors: the errno of getrlimit/setrlimit (system category).
boost::system::result<rlim_t> raise_open_file_limit();

/// How many connections one worker can hold under a descriptor limit of `soft_limit` (a
/// worker inherits the master's): the limit minus a reserve for the worker's own
/// descriptors (standard streams, channel, event loop, log, what its app opens): 64, or a
/// quarter of a limit under 256. Descriptors handed to a worker past its limit are lost
/// in transit (the kernel drops them: MSG_CTRUNC), so the master never gives a worker more.
/// RLIM_INFINITY: no bound (UINT64_MAX).
std::uint64_t worker_connection_capacity(rlim_t soft_limit) noexcept;

/// worker_connection_capacity of this process's current soft RLIMIT_NOFILE (no bound when
/// it cannot be read).
std::uint64_t current_worker_connection_capacity() noexcept;

/// Number of open descriptors of process `pid` (entries of /proc/PID/fd; for the calling
/// process the descriptor used to read the directory is not counted).
/// Errors: no_such_file_or_directory for a process that does not exist, permission_denied
/// for one we may not inspect (system category errno values).
boost::system::result<std::size_t> count_open_descriptors(pid_t pid);

/// Descriptors of process `pid` as (fd, link target) sorted by fd, e.g. (3, "socket:[1234]"),
/// for diagnostics and tests; empty when /proc/PID/fd cannot be read. A descriptor closed
/// while listing is skipped.
std::vector<std::pair<int, std::string>> list_open_descriptors(pid_t pid);

}  // namespace prefork::detail
