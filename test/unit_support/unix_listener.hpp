// A listening Unix socket made the way the master makes its control socket, for unit
// tests of what serves or connects to one.
#pragma once

#include <sys/types.h>

#include <string>

namespace prefork::unit_support {

/// A non-blocking, close-on-exec Unix stream socket bound at `path` (file mode `mode`)
/// and listening; the caller owns the descriptor. Fails the test (BOOST_REQUIRE) on error.
int open_unix_listener(const std::string& path, mode_t mode = 0777);

}  // namespace prefork::unit_support
