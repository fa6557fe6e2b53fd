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

}  // namespace prefork::test_support
