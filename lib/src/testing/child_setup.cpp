// The child's environment for prefork::testing::process: the test's own, without what a
// supervisor set for the test itself, plus the options' variables and socket activation's.
#include "testing/child_setup.hpp"

#include <algorithm>
#include <string>
#include <string_view>
#include <vector>

extern char** environ;

namespace prefork::testing::detail {
namespace {

bool is_supervisor_variable(std::string_view entry) {
  for (std::string_view name :
       {"NOTIFY_SOCKET=", "LISTEN_FDS=", "LISTEN_PID=", "LISTEN_FDNAMES=", "WATCHDOG_USEC=", "WATCHDOG_PID="}) {
    if (entry.starts_with(name)) return true;
  }
  return false;
}

}  // namespace

std::vector<std::string> child_environment(const process_options& options) {
  std::vector<std::string> environment;
  for (char** entry = environ; *entry != nullptr; ++entry) {
    std::string_view text(*entry);
    if (is_supervisor_variable(text)) continue;
    bool replaced = std::any_of(options.environment.begin(), options.environment.end(),
                                [&](const auto& kv) { return text.starts_with(kv.first + "="); });
    if (!replaced) environment.emplace_back(text);
  }
  for (const auto& [name, value] : options.environment) environment.push_back(name + "=" + value);
  if (options.activation) {
    environment.push_back("LISTEN_FDS=" + std::to_string(options.activation->fds.size()));
    if (!options.activation->names.empty()) {
      std::string names;
      for (const auto& name : options.activation->names) names += (names.empty() ? "" : ":") + name;
      environment.push_back("LISTEN_FDNAMES=" + names);
    }
    environment.push_back(std::string(listen_pid_prefix) + std::string(24, '\0'));
  }
  return environment;
}

}  // namespace prefork::testing::detail
