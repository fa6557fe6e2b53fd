// Programs started by a test, each in its own process group, and the tools to make sure
// none of them is left behind: prefork::testing::server is built on these, and a test uses
// them directly for one-shot commands (`preforkd --check`, `preforkctl status`) and for
// programs that run beside a server (nginx in front of it, a waiting preforkctl).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace prefork::testing {

/// How a process ended: an exit code, or the signal that killed it.
struct exit_status {
  int code = -1;   // the exit code when it exited, else -1
  int signal = 0;  // the terminating signal when killed, else 0

  /// Decodes a raw waitpid status.
  static exit_status from_wait_status(int status) noexcept;
  /// "exit 0" or "signal 9 (KILL)", for messages.
  std::string to_string() const;
  friend bool operator==(const exit_status&, const exit_status&) = default;
};

/// The live processes of process group `pgid`, sorted, found by scanning /proc. Zombies
/// do not count: an orphan whose new parent does not reap it is dead for our purposes.
/// Empty when none is left.
std::vector<pid_t> group_members(pid_t pgid);

/// "1234 (preforkd) state S ppid 1200 pgrp 1234", or "1234 (gone)", for messages.
std::string describe_process(pid_t pid);

/// A fresh directory from mkdtemp under $TMPDIR (when short enough for Unix socket paths,
/// which are limited to 107 bytes) or /tmp, named `<prefix>.XXXXXX`. The destructor
/// removes it with its content unless PREFORK_KEEP_TMP is set in the environment.
/// Throws std::system_error when it cannot be created.
class temp_directory {
 public:
  explicit temp_directory(std::string_view prefix = "prefork-test");
  ~temp_directory();
  temp_directory(const temp_directory&) = delete;
  temp_directory& operator=(const temp_directory&) = delete;

  const std::filesystem::path& path() const noexcept { return path_; }
  /// path() / relative.
  std::filesystem::path operator/(const std::filesystem::path& relative) const { return path_ / relative; }

 private:
  std::filesystem::path path_;
};

/// Writes `text` to `file`, replacing it. Throws std::runtime_error on failure.
void write_file(const std::filesystem::path& file, std::string_view text);
/// The whole content of `file`; empty when it cannot be read.
std::string read_file(const std::filesystem::path& file);

/// Listening sockets handed to a program the way systemd's socket activation does: as
/// descriptors 3, 4, ... in this order, with LISTEN_FDS, LISTEN_PID (the child's own pid)
/// and LISTEN_FDNAMES (when `names` is not empty).
struct socket_activation {
  /// Descriptors of the test, which keeps them; the child gets duplicates.
  std::vector<int> fds;
  /// Joined with ':' into LISTEN_FDNAMES.
  std::vector<std::string> names;
};

/// How to start a process.
struct process_options {
  /// The arguments after the program's path.
  std::vector<std::string> arguments;
  /// The working directory; empty: the test's own.
  std::filesystem::path directory;
  /// Environment variables set for the program, over the test's own environment (from
  /// which NOTIFY_SOCKET, LISTEN_* and WATCHDOG_* are always removed, so that a test run
  /// under systemd does not make the program talk to systemd or adopt its sockets).
  std::vector<std::pair<std::string, std::string>> environment;
  /// Files that stdout and stderr are appended to (created when missing); empty: /dev/null.
  std::filesystem::path stdout_file;
  std::filesystem::path stderr_file;
  /// Sockets to pass as systemd would; nullopt: none.
  std::optional<socket_activation> activation;
};

/// One program started with Boost.Process v2 in its own process group, with stdin from
/// /dev/null, the default signal dispositions and mask, no descriptor of the test but the
/// activated sockets, and PR_SET_PDEATHSIG(SIGKILL), so that it dies with the thread that
/// started it. Its pidfd is the one reaper of the leader. Not thread-safe.
///
/// Destruction, also while an exception unwinds the test: SIGKILL to the group unless
/// stop() already ran, the leader reaped, and up to 2 s for the group to disappear (what
/// remains then is killed again). It never throws: call stop() to learn about leftovers.
class process {
 public:
  /// Starts `program` (a path; a relative one is taken from the working directory of the
  /// test). Throws std::runtime_error naming the program and the error (not executable,
  /// no such directory...) when it cannot be started; nothing is left running then.
  explicit process(const std::filesystem::path& program, const process_options& options = {});
  ~process();
  process(const process&) = delete;
  process& operator=(const process&) = delete;

  /// The leader's pid, which is also the process group id.
  pid_t pid() const noexcept;

  /// True while the leader runs; reaps it once it exited (see exit()).
  bool running();
  /// Waits up to `timeout` for the leader to exit (on its pidfd, no busy polling); its
  /// status, or nullopt when it still runs. Never kills anything.
  std::optional<exit_status> wait_exit(std::chrono::milliseconds timeout);
  /// The leader's status once it was reaped.
  const std::optional<exit_status>& exit() const noexcept;
  /// Sleeps up to `duration`, waking early when the leader exits.
  void sleep(std::chrono::microseconds duration);

  /// Sends `signal_number` to the leader through its pidfd (never a recycled pid). False
  /// when the leader has exited.
  bool signal(int signal_number);
  /// Sends `signal_number` to every process of the group. False when the group is gone.
  bool signal_group(int signal_number);

  /// The live processes of the group (group_members(pid())).
  std::vector<pid_t> members() const;
  /// describe_process() of every member, "; "-separated; empty when none is left.
  std::string describe_members() const;
  /// Polls until no process of the group is left; false when `timeout` passes first.
  bool wait_group_gone(std::chrono::milliseconds timeout);

  /// Stops the program: `signal_number` to the leader (SIGTERM by default), up to
  /// `timeout` for it to exit, else SIGKILL to the group; then up to `timeout` for every
  /// other process of the group to disappear. Returns the leader's status. Throws
  /// std::runtime_error naming the processes when some outlived the leader (they are
  /// killed first). Idempotent: later calls return the same status.
  exit_status stop(int signal_number, std::chrono::milliseconds timeout);
  /// SIGKILL to the group, the leader reaped, the group waited for (up to `timeout`, then
  /// killed again). Never throws. stop() and the destructor do nothing afterwards.
  void kill(std::chrono::milliseconds timeout = std::chrono::seconds(2)) noexcept;

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

/// What run() saw.
struct run_result {
  /// The program's exit status; nullopt when it ran past the timeout (it was killed).
  std::optional<exit_status> status;
  /// Everything it wrote to stdout and stderr.
  std::string out;
  std::string err;
  /// Processes of its group that outlived it (then killed), as describe_process says;
  /// empty when it left nothing behind, as a one-shot command should.
  std::string left_behind;

  /// True when it exited with code 0.
  bool succeeded() const noexcept { return status && status->signal == 0 && status->code == 0; }
  /// "exit 2; stdout: ...; stderr: ...", for assertion messages.
  std::string describe() const;
};

/// Runs `program` to completion as a process (options.stdout_file and stderr_file are
/// ignored: the output is captured), killing its group after `timeout`. Throws
/// std::runtime_error when it cannot be started.
run_result run(const std::filesystem::path& program, process_options options,
               std::chrono::milliseconds timeout = std::chrono::seconds(30));

}  // namespace prefork::testing
