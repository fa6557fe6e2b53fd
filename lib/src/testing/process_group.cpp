// Reading /proc for the harness: the live members of a process group, and one line
// describing a process (for messages about what was left behind).
#include "prefork/testing/process.hpp"

#include <algorithm>
#include <charconv>
#include <filesystem>
#include <optional>
#include <sstream>
#include <string>
#include <system_error>
#include <vector>

namespace prefork::testing {

namespace fs = std::filesystem;

namespace {

struct proc_stat {
  std::string command;
  char state = '?';
  pid_t parent = 0;
  pid_t group = 0;
};

std::optional<proc_stat> read_stat(pid_t pid) {
  std::string text = read_file("/proc/" + std::to_string(pid) + "/stat");
  // "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses.
  auto open = text.find('(');
  auto close = text.rfind(')');
  if (open == std::string::npos || close == std::string::npos || close < open) return std::nullopt;
  proc_stat stat;
  stat.command = text.substr(open + 1, close - open - 1);
  std::istringstream rest(text.substr(close + 1));
  if (!(rest >> stat.state >> stat.parent >> stat.group)) return std::nullopt;
  return stat;
}

}  // namespace

std::vector<pid_t> group_members(pid_t pgid) {
  std::vector<pid_t> members;
  std::error_code ec;
  fs::directory_iterator processes("/proc", ec);
  if (ec) return members;
  for (const auto& entry : processes) {
    const std::string name = entry.path().filename().string();
    pid_t pid = 0;
    auto [end, error] = std::from_chars(name.data(), name.data() + name.size(), pid);
    if (error != std::errc{} || end != name.data() + name.size()) continue;
    auto stat = read_stat(pid);
    if (stat && stat->group == pgid && stat->state != 'Z' && stat->state != 'X') members.push_back(pid);
  }
  std::sort(members.begin(), members.end());
  return members;
}

std::string describe_process(pid_t pid) {
  auto stat = read_stat(pid);
  if (!stat) return std::to_string(pid) + " (gone)";
  std::ostringstream text;
  text << pid << " (" << stat->command << ") state " << stat->state << " ppid " << stat->parent << " pgrp "
       << stat->group;
  return text.str();
}

}  // namespace prefork::testing
