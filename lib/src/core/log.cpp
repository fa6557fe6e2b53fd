// prefork's logger: a level filter, a line rendered by core/log_line.cpp into a per-thread
// buffer, and one write(2) to one descriptor. No Boost.Log, by decision (issue #15):
// - A library must not take over its user's logging. Boost.Log has one core per process;
//   a sink we add there receives the program's own records too, and the program's
//   filter decides ours. Measured before the change: a program's
//   `BOOST_LOG_TRIVIAL(warning) << "x"` landed raw, without a newline, inside our JSON
//   log file (corrupting the next line), and its `core->set_logging_enabled(false)`
//   silenced prefork. Using Boost.Log "properly" would not fix that: records and sinks
//   still meet in the shared core, and every consumer would still be forced onto
//   BOOST_LOG_DYN_LINK and libboost_log/log_setup (+ thread, regex...).
// - Workers are forked from the master. Boost.Log's core and sink frontend take locks
//   on every record; a fork while another thread holds one leaves the child stuck on its
//   first line (measured: 20 of 30 children forked while a thread logged hung; now 0).
//   Here a line takes no lock: the descriptor is an atomic, the timestamp is computed
//   without gmtime_r (glibc locks for it), and reopening a file moves the new file onto
//   the same descriptor number (dup3), so a thread writing at that moment writes to the
//   old file or the new one, never to a closed number. (Not async-signal-safe, and it
//   needs not be: signals are read from a signalfd.)
// - Cost: Boost.Log added a record, an attribute set and an ostream to each line that we
//   rendered ourselves anyway. Measured per line with 4 fields (g++ 12 -O2, best of 5):
//   to /dev/null text 1312 -> 590 ns, json 1344 -> 642 ns (write(2) alone: 233 ns); to a
//   file text 2171 -> 1359 ns. preforkd 1390 -> 1357 KB stripped and no libboost_log,
//   thread or filesystem loaded; compiling log.cpp took 4.4 s of CPU and 533 MB, log.cpp
//   + log_line.cpp take 3.9 s and 275 MB each (1.4 s of each is prefork/config.hpp).
// What Boost.Log offers beyond this (async sinks, rotation by size, syslog) nothing here
// needs: lines go to stderr or to a file that logrotate rotates (reopen_logs on USR1).
#include "prefork/log.hpp"

#include "core/log_line.hpp"

#include <atomic>
#include <cerrno>
#include <mutex>
#include <string>
#include <utility>

#include <fcntl.h>
#include <poll.h>
#include <time.h>
#include <unistd.h>

namespace prefork {
namespace {

// Read on every line, possibly before any configuration and from a worker app's own
// threads: constant-initialized atomics, never destroyed.
std::atomic<log_level> threshold{log_level::info};
std::atomic<log_format> line_format{log_format::text};
std::atomic<log_role> role{log_role::master};
std::atomic<int> worker_id{-1};
std::atomic<int> own_pid{0};
std::atomic<int> descriptor{STDERR_FILENO};

/// Where lines go, as configured; changed only by init_logging and reopen_logs, under the
/// mutex. Never destroyed, so that a static destructor may still reopen or reconfigure.
struct destination {
  std::mutex mutex;
  std::string path = "-";
  bool owned = false;  // the descriptor is a file we opened (stderr is not ours to close)
};

destination& configured() {
  static destination* instance = new destination();
  return *instance;
}

boost::system::error_code last_errno() { return {errno, boost::system::system_category()}; }

/// Opens a log destination: `-` is stderr (not owned), else the file for append.
/// O_APPEND makes every write land at the end even when the master and its workers share
/// the file description or open the file separately; O_CLOEXEC keeps it out of exec'd
/// programs (a USR2 upgrade opens its own).
boost::system::error_code open_destination(const std::string& path, int& fd, bool& owned) {
  if (path == "-") {
    fd = STDERR_FILENO;
    owned = false;
    return {};
  }
  int opened;
  do {
    opened = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOCTTY, 0644);
  } while (opened < 0 && errno == EINTR);
  if (opened < 0) return last_errno();
  fd = opened;
  owned = true;
  return {};
}

/// Makes an opened destination the one lines go to; the previous one is closed if it was
/// ours. Called with the destination's mutex held.
void install(destination& target, std::string path, int fd, bool owned) noexcept {
  int current = descriptor.load(std::memory_order_relaxed);
  // The same number means ours was closed behind our back and the number reused by this
  // open (a forked worker's close_range, then reopen_logs): it is simply the log now.
  if (target.owned && fd == current) target.owned = false;
  // A file replacing our file takes over its number: a line being written by another
  // thread goes to one file or the other, never to a closed (or reused) descriptor.
  if (target.owned && owned && ::dup3(fd, current, O_CLOEXEC) == current) {
    ::close(fd);
    target.path = std::move(path);
    return;
  }
  descriptor.store(fd, std::memory_order_relaxed);
  if (target.owned) ::close(current);
  target.path = std::move(path);
  target.owned = owned;
}

int current_pid() noexcept {
  int pid = own_pid.load(std::memory_order_relaxed);
  if (pid == 0) {
    pid = static_cast<int>(::getpid());
    own_pid.store(pid, std::memory_order_relaxed);
  }
  return pid;
}

/// One write(2) per line, so that lines of the master and of its workers never interleave
/// mid-line (O_APPEND, or a pipe for lines under PIPE_BUF); a short write goes on.
void write_line(const std::string& line) noexcept {
  const int fd = descriptor.load(std::memory_order_relaxed);
  const char* data = line.data();
  std::size_t size = line.size();
  while (size > 0) {
    ssize_t written = ::write(fd, data, size);
    if (written > 0) {
      data += written;
      size -= static_cast<std::size_t>(written);
      continue;
    }
    if (written < 0 && errno == EINTR) continue;
    // A stderr someone made non-blocking: wait a little for room rather than drop.
    if (written < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      pollfd waiting{fd, POLLOUT, 0};
      if (::poll(&waiting, 1, 1000) > 0) continue;
    }
    return;  // nowhere left to report it
  }
}

}  // namespace

boost::system::error_code init_logging(const log_config& cfg) {
  auto& target = configured();
  std::lock_guard guard(target.mutex);
  int fd = -1;
  bool owned = false;
  if (auto ec = open_destination(cfg.file, fd, owned)) return ec;
  install(target, cfg.file, fd, owned);
  line_format.store(cfg.format, std::memory_order_relaxed);
  threshold.store(cfg.level, std::memory_order_relaxed);
  return {};
}

void set_log_identity(log_role new_role, int new_worker_id) noexcept {
  role.store(new_role, std::memory_order_relaxed);
  worker_id.store(new_role == log_role::worker ? new_worker_id : -1, std::memory_order_relaxed);
  // Re-read: after fork() the child's pid differs from the one cached by its parent.
  own_pid.store(static_cast<int>(::getpid()), std::memory_order_relaxed);
}

boost::system::error_code reopen_logs() {
  auto& target = configured();
  std::lock_guard guard(target.mutex);
  if (target.path == "-") return {};
  int fd = -1;
  bool owned = false;
  if (auto ec = open_destination(target.path, fd, owned)) return ec;
  install(target, target.path, fd, owned);
  return {};
}

int log_descriptor() noexcept { return descriptor.load(std::memory_order_relaxed); }

bool log_enabled(log_level level) noexcept { return level >= threshold.load(std::memory_order_relaxed); }

void log(log_level level, std::string_view message, std::span<const log_field> fields) noexcept {
  if (!log_enabled(level)) return;
  try {
    thread_local std::string line;  // reused: no allocation once it has grown
    line.clear();
    timespec now{};
    ::clock_gettime(CLOCK_REALTIME, &now);
    const detail::log_identity who{role.load(std::memory_order_relaxed), worker_id.load(std::memory_order_relaxed),
                                   current_pid()};
    detail::render_log_line(line, line_format.load(std::memory_order_relaxed), level, message, fields, who, now);
    write_line(line);
  } catch (...) {
    // Dropped: a logger that throws would turn a report into a crash.
  }
}

}  // namespace prefork
