// What /proc says about the processes a test started: children, socket inodes, and the
// live members of a process group. Linux only; every reader tolerates a vanished process.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

namespace prefork::test_support {

/// The children of `pid` (from /proc/PID/task/*/children, so children forked by any
/// thread count), sorted. Empty when the process is gone.
std::vector<pid_t> children_of(pid_t pid);

/// The inodes of the sockets `pid` holds open ("socket:[N]" links in /proc/PID/fd),
/// sorted, one entry per descriptor. Empty when the process is gone.
std::vector<unsigned long> socket_inodes(pid_t pid);

/// The processes of group `pgid` that are still alive (zombies excluded: an orphan whose
/// new parent does not reap it is dead for our purposes), sorted.
std::vector<pid_t> live_group_members(pid_t pgid);

/// One-line description of `pid` for messages: "1234 (preforkd) state S ppid 1200".
std::string describe_process(pid_t pid);

}  // namespace prefork::test_support
