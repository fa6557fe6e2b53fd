// Runs the real preforkd for integration tests: a unique temp dir, a JSON config, the
// process in its own process group, readiness and log helpers, and a destructor that
// kills the whole group and checks that nothing of it survives, on every path.
#pragma once

#include "prefork/testing/process.hpp"
#include "support/http_client.hpp"
#include "support/programs.hpp"
#include "support/server_helpers.hpp"

#include <boost/json/object.hpp>

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace prefork::test_support {

using prefork::testing::exit_status;
using prefork::testing::read_file;
using prefork::testing::run_result;
using prefork::testing::socket_activation;
using prefork::testing::write_file;
using temp_dir = prefork::testing::temp_directory;

/// A program a test runs in the background beside preforkd (nginx, a waiting preforkctl):
/// its own process group, stdin from /dev/null, stdout and stderr to files, and
/// PR_SET_PDEATHSIG(SIGKILL). Destruction: SIGKILL to the group if the leader was not yet
/// reaped, reap it, wait up to 2 s for every member of the group to vanish (BOOST_ERROR if
/// not, then killed).
class child_process {
 public:
  /// Starts `argv` (argv[0] a path) in `cwd`. Throws std::system_error when it cannot start.
  child_process(const std::vector<std::string>& argv, const std::filesystem::path& cwd,
                const std::filesystem::path& stdout_file, const std::filesystem::path& stderr_file,
                const std::vector<std::pair<std::string, std::string>>& extra_env = {});
  ~child_process();
  child_process(const child_process&) = delete;
  child_process& operator=(const child_process&) = delete;

  pid_t pid() const noexcept { return pid_; }
  /// Reaps the leader if it exited; true while it runs.
  bool running();
  /// Polls (waitpid on the leader only) until it exits; nullopt on timeout.
  std::optional<exit_status> wait_exit(std::chrono::milliseconds timeout);
  const std::optional<exit_status>& status() const noexcept { return status_; }
  /// Sends `sig` to the whole group. False when the leader was already reaped (the group
  /// id may then name nobody, or someone else) or kill() failed.
  bool signal_group(int sig);
  /// True once no live process of the group is left (polls up to `timeout`).
  bool wait_group_gone(std::chrono::milliseconds timeout = std::chrono::seconds(2));

 private:
  pid_t pid_ = -1;
  std::optional<exit_status> status_;
};

/// The config every server_process starts from: `bind: ["unix:app.sock"]`,
/// `control: "ctl.sock"`, `workers: 2`, `log: {"format":"json","level":"info"}`.
boost::json::object default_test_config();

/// How to start a server_process.
struct server_options {
  /// Top-level keys that replace those of default_test_config().
  boost::json::object config;
  /// Arguments after `-c preforkd.json`.
  std::vector<std::string> extra_args;
  /// Environment variables set for preforkd (NOTIFY_SOCKET and LISTEN_* are always removed).
  std::vector<std::pair<std::string, std::string>> extra_env;
  /// Runs with the temp dir before preforkd starts (e.g. to plant a file at the bind path).
  std::function<void(const std::filesystem::path&)> prepare;
  /// When set, preforkd inherits these sockets as systemd socket activation passes them.
  std::optional<socket_activation> activation;
};

/// One preforkd started in a fresh temp dir (its working directory), in its own process
/// group, with stdout and stderr captured to files there (stdout.log, stderr.log), and
/// PR_SET_PDEATHSIG(SIGKILL) so that it dies with the test process.
/// Destruction: SIGKILL to the group if the master still runs, reap the master, wait up
/// to 2 s for every member of the group to vanish (reported with BOOST_ERROR if not, then
/// killed), print the tail of stderr if the test failed, and remove the temp dir.
class server_process {
 public:
  /// Writes the config and starts preforkd (it need not be ready: see wait_ready()).
  /// Throws std::runtime_error / std::system_error when it cannot be started at all.
  explicit server_process(server_options options = {});
  ~server_process();
  server_process(const server_process&) = delete;
  server_process& operator=(const server_process&) = delete;

  const std::filesystem::path& dir() const noexcept { return dir_.path(); }
  /// The effective test config that was written (default_test_config() + options).
  const boost::json::object& config() const noexcept { return config_; }
  pid_t master_pid() const noexcept { return pid_; }

  /// Polls until GET / on the first listener answers 200 and every worker (the
  /// configured count of children of the master) has logged "worker ready".
  /// False when the deadline passes or preforkd exits first; last_error() says which.
  bool wait_ready(std::chrono::milliseconds timeout = std::chrono::seconds(20));
  /// wait_ready(), and on failure BOOST_REQUIRE fails the test with diagnostics().
  void require_ready(std::chrono::milliseconds timeout = std::chrono::seconds(20));
  const std::string& last_error() const noexcept { return last_error_; }

  /// The first `unix:` bind of the config, made absolute (dir()/app.sock by default).
  endpoint unix_endpoint() const;
  /// The addresses of the "listening" log lines, in order.
  std::vector<endpoint> listening_endpoints() const;
  /// The address logged for the listener whose `bind` is `bind`, if logged.
  std::optional<endpoint> listening_endpoint(std::string_view bind) const;

  /// The master's current children (its workers), sorted. Empty once it has exited.
  std::vector<pid_t> worker_pids();

  /// Reaps the master if it exited; true while it runs.
  bool running();
  /// Sends `sig` to the master. False when it was already reaped.
  bool signal(int sig);
  /// Polls (waitpid on the master only, WNOHANG) until it exits; nullopt on timeout.
  std::optional<exit_status> wait_exit(std::chrono::milliseconds timeout);
  /// The master's exit status once reaped.
  const std::optional<exit_status>& status() const noexcept { return status_; }
  /// True once no live process of the group is left (polls up to `timeout`).
  bool wait_group_gone(std::chrono::milliseconds timeout = std::chrono::seconds(2));

  /// Every stderr line that is a JSON object, in order (other lines are skipped).
  std::vector<boost::json::object> log_lines() const;
  /// The log lines whose "msg" is `msg`.
  std::vector<boost::json::object> find_log(std::string_view msg) const;
  /// Polls the log until a line with "msg" == `msg` satisfies `match`; nullopt on timeout.
  std::optional<boost::json::object> wait_for_log(
      std::string_view msg, std::chrono::milliseconds timeout,
      const std::function<bool(const boost::json::object&)>& match = {}) const;

  std::string stderr_text() const;
  std::string stdout_text() const;
  /// last_error() plus the last lines of stderr, for assertion messages.
  std::string diagnostics(std::size_t lines = 40) const;

 private:
  void cleanup() noexcept;

  temp_dir dir_;
  boost::json::object config_;
  pid_t pid_ = -1;
  std::optional<exit_status> status_;
  std::string last_error_;
};

}  // namespace prefork::test_support
