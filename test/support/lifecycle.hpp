// Helpers for the lifecycle integration tests (reload, scale, recycle, faults, logs,
// upgrade), beside server_helpers.hpp: polling, JSON log files, /whoami of the testbed
// app, idle keep-alive clients, and a child-subreaper guard for the upgrade test.
#pragma once

#include "support/http_client.hpp"
#include "support/json_fields.hpp"
#include "support/load.hpp"
#include "support/server_helpers.hpp"

#include "prefork/control_client.hpp"

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>
#include <boost/system/result.hpp>

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace prefork::test_support {

/// Polls `condition` every `interval` until it holds (true) or `timeout` passes (false).
bool wait_until(const std::function<bool()>& condition, std::chrono::milliseconds timeout,
                std::chrono::milliseconds interval = std::chrono::milliseconds(10));

/// The JSON-object lines of a log file, in order (other lines are skipped); empty when the
/// file cannot be read.
std::vector<boost::json::object> json_lines_of(const std::filesystem::path& file);
/// The lines of json_lines_of(file) whose "msg" is `msg`.
std::vector<boost::json::object> find_log_in(const std::filesystem::path& file, std::string_view msg);

/// The "ts" of a log line (RFC 3339 UTC with milliseconds, as prefork writes it).
std::optional<std::chrono::system_clock::time_point> log_time(const boost::json::object& line);

/// What GET /whoami of the testbed app says.
struct whoami_reply {
  long long worker = 0;
  pid_t pid = 0;
  long long generation = 0;
};

/// Sends GET /whoami on `connection` (kept alive) and parses the reply. Errors: the
/// transport's, or boost::system::errc::bad_message for a status other than 200 or a body
/// that is not the expected object.
boost::system::result<whoami_reply> whoami(http_connection& connection, std::chrono::milliseconds timeout);
/// whoami() on a fresh connection (closed afterwards).
boost::system::result<whoami_reply> whoami(const endpoint& where, std::chrono::milliseconds timeout);

/// Keep-alive clients that are idle most of the time, from one thread: `connections`
/// connections, each sending GET `path` and expecting 200 in turn, with `pause` after each
/// round. Idle connections are what a draining worker hands back, and a request sent on
/// one just as it is handed back is the reload race (SPEC section 2). A response with
/// `Connection: close` makes the next request use a new connection (counted in
/// `reconnects`, not a failure). Counters as load_generator's; stop() or the destructor ends
/// the thread within about one request timeout (5 s).
class paced_keep_alive_clients {
 public:
  paced_keep_alive_clients(endpoint target, int connections, std::chrono::milliseconds pause, std::string path = "/");
  ~paced_keep_alive_clients();
  paced_keep_alive_clients(const paced_keep_alive_clients&) = delete;
  paced_keep_alive_clients& operator=(const paced_keep_alive_clients&) = delete;

  /// The counters so far (thread-safe).
  load_result snapshot() const;
  /// Ends the thread and returns the totals. Idempotent.
  load_result stop();

 private:
  void run();

  endpoint target_;
  int connections_;
  std::chrono::milliseconds pause_;
  std::string path_;
  std::atomic<bool> stopping_{false};
  mutable std::mutex mutex_;
  load_result result_;
  std::thread thread_;
};

/// True when `pid` is alive and not a zombie.
bool process_alive(pid_t pid);
/// The parent pid of `pid` from /proc, nullopt when it is gone.
std::optional<pid_t> parent_of(pid_t pid);

/// Makes this process a child subreaper (PR_SET_CHILD_SUBREAPER) for its lifetime, so
/// that the successor master of an upgrade (a child of the old master, which exits) is
/// re-parented here and can be waited for; resets it on destruction. Other descendants
/// that are orphaned meanwhile are re-parented here too: reap them with reap().
/// Throws std::system_error when prctl fails.
class subreaper_scope {
 public:
  subreaper_scope();
  ~subreaper_scope();
  subreaper_scope(const subreaper_scope&) = delete;
  subreaper_scope& operator=(const subreaper_scope&) = delete;
};

/// Waits (waitpid on `pid` only, polling) until the child `pid` exits; nullopt on timeout
/// or when it is not a child of this process.
std::optional<prefork::testing::exit_status> wait_child(pid_t pid, std::chrono::milliseconds timeout);

}  // namespace prefork::test_support
