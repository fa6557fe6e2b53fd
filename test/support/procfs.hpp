// What /proc says about the processes a test started: children and socket inodes (the
// live members of a process group and process descriptions are prefork::testing's
// group_members and describe_process). Linux only; every reader tolerates a vanished process.
#pragma once

#include <sys/types.h>

#include <vector>

namespace prefork::test_support {

/// The children of `pid` (from /proc/PID/task/*/children, so children forked by any
/// thread count), sorted. Empty when the process is gone.
std::vector<pid_t> children_of(pid_t pid);

/// The inodes of the sockets `pid` holds open ("socket:[N]" links in /proc/PID/fd),
/// sorted, one entry per descriptor. Empty when the process is gone.
std::vector<unsigned long> socket_inodes(pid_t pid);

}  // namespace prefork::test_support
