// The entry point of a prefork program: preforkd's whole command line, configuration,
// listeners, signals and supervision, serving one of the given apps.
#pragma once

#include "prefork/app.hpp"
#include "prefork/dispatch.hpp"

#include <boost/json/object.hpp>

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace prefork {

/// prefork's version, e.g. "0.1.0".
std::string_view version() noexcept;

/// Parses preforkd's command line (SPEC section 2), loads the configuration, opens the
/// listeners and runs the master until it stops. The config's `app` (or `--app`) names
/// which of `apps` serves connections; by default the first. A name that is not one of
/// `apps` is a configuration error naming them. Returns the process exit status: 0 clean
/// stop, 1 fatal runtime error, 2 usage or configuration error, 3 cannot bind or listen.
/// Must be called from main() before any other thread exists (it forks workers).
int run(int argc, const char* const* argv, std::vector<app> apps);

/// What a program may change beyond preforkd's command line and configuration: its
/// identity (--help, --version, the prefix of its error messages) and its defaults.
struct run_options {
  /// The program's name in --help's usage line, --version and error messages; empty: the
  /// file name of argv[0].
  std::string name = {};
  /// One line saying what the program does, shown by --help; empty: preforkd's.
  std::string description = {};
  /// The program's version: --version prints "NAME VERSION (prefork X.Y.Z)" ("NAME
  /// (prefork X.Y.Z)" when empty).
  std::string version = {};
  /// Configuration values before the file's, in the file's syntax and checked by its rules,
  /// e.g. `{{"bind", "unix:run/api.sock"}, {"control", "run/api.ctl"}, {"app", "api"}}`.
  /// The file overrides them key by key (a file's `"log": {"format": "json"}` keeps a
  /// default `log.level`), the command line overrides both. Keys not given keep preforkd's
  /// defaults (SPEC section 2), except `app`: the first of `apps`. A bad value is a
  /// configuration error at start (exit 2, "program defaults: ...").
  boost::json::object defaults = {};
  /// Makes the dispatch policy (called at start and after each reload); it replaces the
  /// config's `dispatch`. Called on the master only.
  std::function<std::unique_ptr<dispatch_policy>()> dispatch = {};
};

/// run() with options.
int run(int argc, const char* const* argv, std::vector<app> apps, run_options options);

}  // namespace prefork
