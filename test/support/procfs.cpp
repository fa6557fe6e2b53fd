#include "support/procfs.hpp"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string_view>
#include <system_error>

namespace prefork::test_support {

namespace fs = std::filesystem;

namespace {

std::optional<long> parse_number(std::string_view text) {
  long value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc{} || end != text.data() + text.size()) return std::nullopt;
  return value;
}

std::string read_small_file(const fs::path& file) {
  std::ifstream in(file);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

struct process_stat {
  std::string command;
  char state = '?';
  pid_t parent = 0;
  pid_t group = 0;
};

// /proc/PID/stat is "pid (comm) state ppid pgrp ..."; comm may hold spaces and
// parentheses, so fields are counted from the last ')'.
std::optional<process_stat> read_stat(pid_t pid) {
  std::string text = read_small_file(fs::path("/proc") / std::to_string(pid) / "stat");
  auto open = text.find('(');
  auto close = text.rfind(')');
  if (open == std::string::npos || close == std::string::npos || close < open) return std::nullopt;
  process_stat stat;
  stat.command = text.substr(open + 1, close - open - 1);
  std::istringstream rest(text.substr(close + 1));
  long parent = 0;
  long group = 0;
  if (!(rest >> stat.state >> parent >> group)) return std::nullopt;
  stat.parent = static_cast<pid_t>(parent);
  stat.group = static_cast<pid_t>(group);
  return stat;
}

}  // namespace

std::vector<pid_t> children_of(pid_t pid) {
  std::vector<pid_t> children;
  std::error_code ec;
  fs::directory_iterator tasks(fs::path("/proc") / std::to_string(pid) / "task", ec);
  if (ec) return children;
  for (const auto& task : tasks) {
    std::istringstream list(read_small_file(task.path() / "children"));
    long child = 0;
    while (list >> child) children.push_back(static_cast<pid_t>(child));
  }
  std::sort(children.begin(), children.end());
  children.erase(std::unique(children.begin(), children.end()), children.end());
  return children;
}

std::vector<unsigned long> socket_inodes(pid_t pid) {
  std::vector<unsigned long> inodes;
  std::error_code ec;
  fs::directory_iterator fds(fs::path("/proc") / std::to_string(pid) / "fd", ec);
  if (ec) return inodes;
  for (const auto& fd : fds) {
    std::error_code link_ec;
    std::string target = fs::read_symlink(fd.path(), link_ec).string();
    constexpr std::string_view prefix = "socket:[";
    if (link_ec || !target.starts_with(prefix) || !target.ends_with(']')) continue;
    auto digits = std::string_view(target).substr(prefix.size(), target.size() - prefix.size() - 1);
    if (auto inode = parse_number(digits)) inodes.push_back(static_cast<unsigned long>(*inode));
  }
  std::sort(inodes.begin(), inodes.end());
  return inodes;
}

std::vector<pid_t> live_group_members(pid_t pgid) {
  std::vector<pid_t> members;
  std::error_code ec;
  fs::directory_iterator processes("/proc", ec);
  if (ec) return members;
  for (const auto& entry : processes) {
    auto pid = parse_number(entry.path().filename().string());
    if (!pid) continue;
    auto stat = read_stat(static_cast<pid_t>(*pid));
    if (stat && stat->group == pgid && stat->state != 'Z' && stat->state != 'X') {
      members.push_back(static_cast<pid_t>(*pid));
    }
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

}  // namespace prefork::test_support
