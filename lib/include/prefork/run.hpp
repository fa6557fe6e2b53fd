// The entry point of a prefork program: preforkd's whole command line, configuration,
// listeners, signals and supervision, serving one of the given apps.
#pragma once

#include "prefork/app.hpp"
#include "prefork/dispatch.hpp"

#include <functional>
#include <memory>
#include <string_view>
#include <vector>

namespace prefork {

/// prefork's version, e.g. "0.1.0".
std::string_view version() noexcept;

/// Parses preforkd's command line (SPEC section 2), loads the configuration, opens the
/// listeners and runs the master until it stops. The config's `app` names which of `apps`
/// serves connections. Returns the process exit status: 0 clean stop, 1 fatal runtime
/// error, 2 usage or configuration error, 3 cannot bind or listen. Must be called from
/// main() before any other thread exists (it forks workers).
int run(int argc, const char* const* argv, std::vector<app> apps);

/// What a program may change beyond preforkd's command line and configuration.
struct run_options {
  /// Makes the dispatch policy (called at start and after each reload); it replaces the
  /// config's `dispatch`. Called on the master only.
  std::function<std::unique_ptr<dispatch_policy>()> dispatch = {};
};

/// run() with options.
int run(int argc, const char* const* argv, std::vector<app> apps, run_options options);

}  // namespace prefork
