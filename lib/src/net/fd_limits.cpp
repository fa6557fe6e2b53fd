#include "net/fd_limits.hpp"

#include <dirent.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <fstream>
#include <memory>
#include <string_view>

namespace prefork::detail {
namespace {

boost::system::error_code last_error() { return {errno, boost::system::system_category()}; }

struct directory_closer {
  void operator()(DIR* directory) const noexcept { ::closedir(directory); }
};
using directory_ptr = std::unique_ptr<DIR, directory_closer>;

// Opens /proc/PID/fd; `own_fd` is the descriptor of the listing itself when it shows up in
// it (pid is us), so that callers can leave it out.
directory_ptr open_fd_directory(pid_t pid, int& own_fd) {
  const std::string path = "/proc/" + std::to_string(pid) + "/fd";
  directory_ptr directory(::opendir(path.c_str()));
  own_fd = (directory && pid == ::getpid()) ? ::dirfd(directory.get()) : -1;
  return directory;
}

// The descriptor number of a directory entry, or -1 for "." and "..".
int entry_fd(const dirent& entry) {
  const std::string_view name = entry.d_name;
  int fd = -1;
  const auto [end, error] = std::from_chars(name.data(), name.data() + name.size(), fd);
  if (error != std::errc{} || end != name.data() + name.size()) return -1;
  return fd;
}

// The kernel's ceiling for RLIMIT_NOFILE, used when the hard limit says "unlimited".
rlim_t nr_open() {
  std::ifstream file("/proc/sys/fs/nr_open");
  unsigned long long value = 0;
  if (file >> value && value > 0) return static_cast<rlim_t>(value);
  return 1048576;  // the kernel's default
}

}  // namespace

boost::system::result<rlim_t> raise_open_file_limit() {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0) return last_error();
  const rlim_t target = limit.rlim_max == RLIM_INFINITY ? nr_open() : limit.rlim_max;
  if (limit.rlim_cur != RLIM_INFINITY && limit.rlim_cur >= target) return limit.rlim_cur;
  limit.rlim_cur = target;
  if (::setrlimit(RLIMIT_NOFILE, &limit) != 0) return last_error();
  return target;
}

std::uint64_t worker_connection_capacity(rlim_t soft_limit) noexcept {
  if (soft_limit == RLIM_INFINITY) return UINT64_MAX;
  const rlim_t reserve = soft_limit >= 256 ? 64 : soft_limit / 4;
  return soft_limit > reserve ? static_cast<std::uint64_t>(soft_limit - reserve) : 1;
}

std::uint64_t current_worker_connection_capacity() noexcept {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0) return UINT64_MAX;
  return worker_connection_capacity(limit.rlim_cur);
}

boost::system::result<std::size_t> count_open_descriptors(pid_t pid) {
  int own_fd = -1;
  const directory_ptr directory = open_fd_directory(pid, own_fd);
  if (!directory) return last_error();
  std::size_t count = 0;
  errno = 0;
  while (const dirent* entry = ::readdir(directory.get())) {
    const int fd = entry_fd(*entry);
    if (fd >= 0 && fd != own_fd) ++count;
  }
  // readdir fails only if the process goes away meanwhile; that is an answer too.
  if (errno != 0) return last_error();
  return count;
}

std::vector<std::pair<int, std::string>> list_open_descriptors(pid_t pid) {
  std::vector<std::pair<int, std::string>> descriptors;
  int own_fd = -1;
  const directory_ptr directory = open_fd_directory(pid, own_fd);
  if (!directory) return descriptors;
  const std::string prefix = "/proc/" + std::to_string(pid) + "/fd/";
  std::array<char, 4096> target{};
  while (const dirent* entry = ::readdir(directory.get())) {
    const int fd = entry_fd(*entry);
    if (fd < 0 || fd == own_fd) continue;
    const std::string link = prefix + entry->d_name;
    const ssize_t length = ::readlink(link.c_str(), target.data(), target.size());
    if (length < 0) continue;  // closed since readdir
    descriptors.emplace_back(fd, std::string(target.data(), static_cast<std::size_t>(length)));
  }
  std::sort(descriptors.begin(), descriptors.end());
  return descriptors;
}

}  // namespace prefork::detail
