// preforkd's command line (SPEC section 2): parsing the options, the help text, and the
// effective configuration (defaults, then the file, then the command-line overrides).
#pragma once

#include "prefork/config.hpp"
#include "prefork/error.hpp"

#include <boost/system/result.hpp>

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace prefork {

/// What `preforkd [-c FILE] [-b BIND]... [-w N|auto] [--app NAME | --exec COMMAND]
/// [--control PATH] [--log-level LEVEL] [--check-config] [--version] [--help]` asked for,
/// not yet validated against the config rules (effective_config does that).
struct command_line {
  std::optional<std::filesystem::path> config_file;  // -c, --config
  std::vector<std::string> binds;                    // -b, --bind, in order given
  std::optional<std::string> workers;                // -w, --workers: "N" or "auto"
  std::optional<std::string> app;                    // --app
  std::optional<std::string> exec;                   // --exec: a command, split at whitespace
  std::optional<std::string> control;                // --control: the control socket's path
  std::optional<std::string> log_level;              // --log-level
  bool check_config = false;                         // --check-config
  bool show_version = false;                         // --version
  bool show_help = false;                            // -h, --help
};

/// Parses argv (argv[0] is the program name). An unknown option, a missing value, an option
/// given twice that takes one value, or a positional argument is an error whose message names
/// it; the caller prints it and exits 2.
prefork::result<command_line> parse_command_line(int argc, const char* const* argv);

/// What --help says about a program beyond the options.
struct help_details {
  /// One line saying what the program is; empty: preforkd's ("A pre-forking connection
  /// supervisor...").
  std::string description;
  /// The apps the program serves, the default first; empty: preforkd's built-in apps.
  std::vector<std::string> apps;
  /// Where the defaults for the bind and control lines come from.
  config defaults = default_config();
};

/// The help text: a usage line with `program_name`, the description, then every option
/// (with the program's apps and its default bind and control socket).
std::string usage_text(std::string_view program_name, const help_details& details = {});

/// Loads the file (if any) over the defaults, then applies the command line: -b replaces the
/// file's bind list; -w, --app, --exec, --control and --log-level override. Values are
/// checked with the file's rules; errors name the option (`"--workers": expected an
/// integer >= 1 or "auto", got "lots"`) or the file and key, or say why the file cannot be
/// read. Without a file the defaults are checked as an empty file would be (an app's
/// check_config runs with its section absent).
prefork::result<config> effective_config(const command_line& command);
/// The same with a program's defaults, apps and app sections (config.hpp).
prefork::result<config> effective_config(const command_line& command, const config_rules& rules);

}  // namespace prefork
