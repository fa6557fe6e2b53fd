#include "master/upgrade_handover.hpp"

#include "master/master.hpp"

#include <charconv>
#include <cstdlib>
#include <fcntl.h>
#include <string_view>
#include <sys/stat.h>
#include <unistd.h>

namespace prefork::detail {

namespace {
bool parse_fd(std::string_view text, int& fd) {
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), fd);
  return ec == std::errc() && end == text.data() + text.size() && fd >= 0;
}
}  // namespace

upgrade_handover take_upgrade_handover() {
  upgrade_handover handover;
  if (const char* value = std::getenv(inherit_environment_variable)) {
    std::string_view rest(value);
    while (!rest.empty()) {
      auto end = rest.find(';');
      std::string_view entry = rest.substr(0, end);
      rest = end == std::string_view::npos ? std::string_view{} : rest.substr(end + 1);
      auto equals = entry.find('=');
      int fd = -1;
      if (equals == std::string_view::npos || !parse_fd(entry.substr(0, equals), fd)) continue;
      handover.sockets.emplace(std::string(entry.substr(equals + 1)), fd);
    }
  }
  if (const char* value = std::getenv(upgrade_ready_fd_variable)) {
    int fd = -1;
    if (parse_fd(value, fd)) handover.ready_fd = fd;
  }
  ::unsetenv(inherit_environment_variable);
  ::unsetenv(upgrade_ready_fd_variable);
  if (handover.ready_fd >= 0) ::fcntl(handover.ready_fd, F_SETFD, FD_CLOEXEC);
  return handover;
}

prefork::result<listener> adopt_or_open(upgrade_handover& handover, const std::string& name, const bind_address& where,
                                        int backlog, unsigned socket_mode) {
  auto found = handover.sockets.find(name);
  if (found == handover.sockets.end()) return open_listener(where, backlog, socket_mode);
  bind_address inherited;
  inherited.type = bind_address::kind::inherited_fd;
  inherited.fd = found->second;
  handover.sockets.erase(found);
  auto adopted = open_listener(inherited, backlog, socket_mode);
  if (!adopted) return adopted;
  adopted->configured = where;
  if (where.type == bind_address::kind::unix_path) {
    if (!where.path.empty() && where.path.front() != '/') {
      char cwd[4096];
      if (::getcwd(cwd, sizeof cwd) != nullptr) adopted->address = "unix:" + std::string(cwd) + "/" + where.path;
    }
    // The old master leaves the file to us: remove it at exit, if it is still this one.
    struct stat file {};
    if (::lstat(where.path.c_str(), &file) == 0 && S_ISSOCK(file.st_mode)) {
      adopted->owns_path = true;
      adopted->path_dev = file.st_dev;
      adopted->path_ino = file.st_ino;
    }
  }
  return adopted;
}

void close_unclaimed(upgrade_handover& handover) {
  for (auto& [name, fd] : handover.sockets) ::close(fd);
  handover.sockets.clear();
}

void announce_upgrade_ready(upgrade_handover& handover) {
  if (handover.ready_fd < 0) return;
  static constexpr std::string_view ready = "READY\n";
  (void)!::write(handover.ready_fd, ready.data(), ready.size());
  ::close(handover.ready_fd);
  handover.ready_fd = -1;
}

}  // namespace prefork::detail
