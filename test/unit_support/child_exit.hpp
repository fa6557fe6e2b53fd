// Waiting for a forked child in a unit test without hanging the test.
#pragma once

#include <sys/types.h>

namespace prefork::unit_support {

/// Reaps `child` and returns its exit code; -1 when it was killed by a signal, or when it
/// had not finished within 5 s (it is then killed with SIGKILL and reaped).
int wait_bounded(pid_t child);

}  // namespace prefork::unit_support
