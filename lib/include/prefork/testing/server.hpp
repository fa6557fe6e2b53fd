// A harness for integration tests of prefork programs: starts preforkd (or any program
// built on prefork::run) in a fresh temp directory and its own process group, waits until
// every worker is ready, drives it (control, HTTP, faults), and stops it leaving nothing.
#pragma once

#include "prefork/connection.hpp"
#include "prefork/error.hpp"
#include "prefork/testing/http_session.hpp"
#include "prefork/testing/process.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace prefork::testing {

/// A failed control request, thrown: `code()` is the master's control code
/// (prefork::errc::not_found, bad_request, ...) or why no reply came (errc::unreachable,
/// timeout, disconnected, bad_reply); what() is the message, prefixed with the request.
class control_error : public std::runtime_error {
 public:
  explicit control_error(failure error);
  const boost::system::error_code& code() const noexcept { return code_; }

 private:
  boost::system::error_code code_;
};
/// The lines of `text` that are JSON objects (a log written with `"format": "json"`), in
/// order; other lines are skipped.
std::vector<boost::json::object> json_lines(std::string_view text);

/// The configuration every server starts from (top-level keys of server_options::config
/// replace these): `bind: ["unix:app.sock"]`, `control: "ctl.sock"`, `workers: 2`,
/// `graceful_timeout: 5`, `log: {"level": "info", "format": "json"}`. Relative paths are
/// relative to the server's temp directory.
boost::json::object default_server_config();

/// Whether the server constructor waits until every worker is ready.
enum class start_wait { until_ready, no_wait };

/// Whether a call waits for its effect to complete.
enum class completion { wait, no_wait };

/// How server::stop stops the master: TERM (finish in-flight requests) or INT (at once).
enum class stop_mode { graceful, fast };

/// How to start a server.
struct server_options {
  /// The program to run: preforkd, or any program whose main calls prefork::run. Empty:
  /// the path in the environment variable PREFORKD.
  std::filesystem::path program;
  /// Top-level keys that replace those of default_server_config(), e.g. `config["app"] =
  /// "testbed"`, `config["workers"] = 4`. Written as preforkd.json in the temp directory.
  boost::json::object config;
  /// Arguments after `-c preforkd.json`.
  std::vector<std::string> arguments;
  /// Environment variables set for the program, over the test's own environment (from
  /// which NOTIFY_SOCKET, LISTEN_* and WATCHDOG_* are always removed).
  std::vector<std::pair<std::string, std::string>> environment;
  start_wait wait = start_wait::until_ready;
  std::chrono::milliseconds start_timeout{std::chrono::seconds(20)};
  /// How long stop() (and the destructor) lets the master stop before killing the group,
  /// and then how long the group's other processes may take to disappear.
  std::chrono::milliseconds stop_timeout{std::chrono::seconds(10)};
  /// Bounds each control request and each HTTP request of server::get.
  std::chrono::milliseconds request_timeout{std::chrono::seconds(10)};
  /// Called by the destructor when stop() fails (processes of the group outlived the
  /// master), with the message. Empty: the message goes to stderr and std::abort() is
  /// called, so that a leak cannot pass unnoticed. A Boost.Test user passes
  /// `[](const std::string& m) { BOOST_ERROR(m); }`.
  std::function<void(const std::string&)> on_stop_failure;
  /// Called with the temp directory after the config is written and before the program
  /// starts, e.g. to plant a file where a socket is to be bound.
  std::function<void(const std::filesystem::path&)> prepare;
  /// Sockets the program inherits as systemd's socket activation passes them.
  std::optional<socket_activation> activation;
};

/// One server process started for a test. The program runs with the temp directory as
/// its working directory, in its own process group, with stdin from /dev/null, stdout and
/// stderr appended to stdout.log and stderr.log there, and PR_SET_PDEATHSIG(SIGKILL), so
/// it dies with the thread that created the server. Not thread-safe, except session().
///
/// Destruction, also while an exception unwinds the test: stop(stop_mode::graceful), then
/// the temp directory is removed (kept when PREFORK_KEEP_TMP is set in the environment).
class server {
 public:
  /// Creates the temp directory, writes the config, starts the program and (with
  /// start_wait::until_ready) waits until every desired worker is ready (wait_ready).
  /// Throws std::runtime_error when the program is unknown or cannot be started, exits
  /// before it is ready, or is not ready within start_timeout; the message carries the
  /// last lines of its stderr. Nothing is left running when the constructor throws.
  explicit server(server_options options = {});
  ~server();
  server(const server&) = delete;
  server& operator=(const server&) = delete;

  // --- what was started ----------------------------------------------------------------

  /// The temp directory: the program's working directory, with preforkd.json,
  /// stdout.log and stderr.log.
  const std::filesystem::path& directory() const noexcept;
  /// The master's pid, which is also the process group of the server.
  pid_t pid() const noexcept;
  /// The configuration that was written (default_server_config() with the options' keys).
  const boost::json::object& config() const noexcept;
  /// The control socket (absolute).
  std::filesystem::path control_path() const;
  /// The first listener's bound address in bind syntax (`unix:/abs/path`,
  /// `127.0.0.1:43123`: a port 0 in the config shows here as the port it got), as
  /// `status` reports it now. Throws std::runtime_error when the master does not answer
  /// (control_error when it answers with an error).
  std::string address();
  /// The path of the first `unix:` listener of the config, made absolute. Throws
  /// std::runtime_error when the config binds no Unix socket.
  std::filesystem::path socket_path() const;
  /// Everything the program wrote to stderr so far (its log, by default).
  std::string log_text() const;
  /// The last `lines` lines of log_text(), for assertion messages.
  std::string log_tail(std::size_t lines = 30) const;
  /// Everything the program wrote to stdout so far.
  std::string stdout_text() const;
  /// The lines of log_text() that are JSON objects (the log with `"format": "json"`), in
  /// order; other lines are skipped.
  std::vector<boost::json::object> log_lines() const;
  /// The log_lines() whose "msg" is `msg`.
  std::vector<boost::json::object> find_log(std::string_view msg) const;
  /// Polls the log (every 10 ms) until a line with "msg" == `msg` satisfies `match` (any
  /// such line when `match` is empty) and returns it; nullopt when `timeout` passes first.
  std::optional<boost::json::object> wait_for_log(
      std::string_view msg, std::chrono::milliseconds timeout,
      const std::function<bool(const boost::json::object&)>& match = {}) const;

  // --- readiness and exit --------------------------------------------------------------

  /// Polls `status` (every 0.5 ms at first, then less often) until `workers.ready` (plus
  /// `paused`) >= `workers.desired` and `workers.starting` == 0. Throws
  /// std::runtime_error (with what it last saw and the tail of the log) when `timeout`
  /// passes first or the master exits. wait_ready() waits up to start_timeout.
  void wait_ready(std::chrono::milliseconds timeout);
  void wait_ready() { wait_ready(start_timeout_); }

  /// True while the master runs; reaps it once it exited (see master_exit()).
  bool running();
  /// Waits up to `timeout` for the master to exit; its status, or nullopt when it still
  /// runs. Never kills anything.
  std::optional<exit_status> wait_exit(std::chrono::milliseconds timeout);
  /// The master's status once it was reaped.
  const std::optional<exit_status>& master_exit() const noexcept;

  /// Stops the server: sends TERM (graceful) or INT (fast) to the master, waits up to
  /// stop_timeout for it to exit, else kills the whole group with SIGKILL; then waits up
  /// to stop_timeout for every process of the group to disappear. Returns the master's
  /// exit status (signal 9 when it had to be killed). Throws std::runtime_error naming
  /// the processes when some outlived the master (they are killed first). Idempotent:
  /// later calls return the same status; after the master exited by itself it only checks.
  exit_status stop(stop_mode mode = stop_mode::graceful);

  // --- control socket (SPEC section 3) -------------------------------------------------

  /// Sends one request over the server's control connection (connected on first use and
  /// again after a transport failure) and returns the reply's `result`. A read-only request
  /// (`status`, `workers`, `stats`, `ping`) that finds the connection closed by the master
  /// (its idle timeout, an upgrade) is sent once more on a new connection. Throws
  /// control_error on an error reply or when the master cannot be reached or does not
  /// answer within request_timeout.
  boost::json::value control(boost::json::object request);
  /// Closes the server's own control connection (opened by the first control call, by
  /// wait_ready() and by the constructor, and kept open: the master then holds one
  /// descriptor and one control connection for it) and its HTTP session. The next call
  /// that needs them connects again. For tests that count what the master holds.
  void disconnect() noexcept;
  /// control({"cmd":"status"}) as an object.
  boost::json::object status();
  /// control({"cmd":"workers"}) as an array of worker objects.
  boost::json::array workers();
  /// control({"cmd":"stats"}) as an object.
  boost::json::object stats();

  // --- HTTP and raw sockets ------------------------------------------------------------

  /// GET `target` on the first listener over the server's own keep-alive session, http():
  /// http().get(target, headers). Throws std::runtime_error on a transport failure (any
  /// status is a response); std::invalid_argument on a malformed header.
  http_response get(std::string_view target, const http_headers& headers = {});
  /// POST on the server's own session: http().post(target, body, content_type, headers).
  /// Throws as get.
  http_response post(std::string_view target, std::string_view body, std::string_view content_type = "text/plain",
                     const http_headers& headers = {});
  /// POST `body` as JSON on the server's own session: http().post_json(target, body,
  /// headers). Throws as get; read the answer with http_response::json().
  http_response post_json(std::string_view target, const boost::json::value& body, const http_headers& headers = {});
  /// Any request on the server's own session: http().request(request). Throws as get.
  http_response request(const http_request& request);
  /// The server's own session (first listener), which get, post, post_json and request
  /// use: one kept-alive connection (its connections() shows reconnects), for try_request
  /// and failure tests. The reference lives as long as the server; stop() and
  /// disconnect() close its connection.
  http_session& http();
  /// A new session to the first listener (its address from the last `status`), e.g. one
  /// per client thread. Thread-safe. Throws std::runtime_error before the address is
  /// known (start_wait::no_wait with no Unix socket in the config).
  http_session session() const;
  /// A socket connected (blocking, at most request_timeout) to the first listener, on
  /// `executor`, for tests that speak raw bytes; the caller owns it. Throws
  /// boost::system::system_error when the connect fails or times out, std::runtime_error
  /// as session().
  socket_type connect(const boost::asio::any_io_executor& executor) const;

  // --- fault injection -----------------------------------------------------------------

  /// Signals worker `id` with `signal_number` and returns its pid. SIGTERM and SIGKILL go
  /// through the control socket (`kill_worker`: the master counts an exit, and TERM
  /// recycles the worker); any other signal is sent straight to the pid (for a SIGKILL
  /// from outside, which the master counts as a crash, use signal_worker). With
  /// completion::wait, returns once that pid is no longer a worker and every desired
  /// worker is ready again. Throws control_error (`not_found` for an unknown id),
  /// std::runtime_error on a wait timeout (start_timeout).
  pid_t kill_worker(int id, int signal_number, completion wait = completion::wait);
  /// Sends `signal_number` with kill(2) straight to worker `id`'s pid: the master sees a
  /// crash. With completion::wait, as kill_worker. Throws as kill_worker.
  pid_t signal_worker(int id, int signal_number, completion wait = completion::wait);
  /// `pause_worker`: the worker keeps its connections but gets no new ones.
  void pause_worker(int id);
  /// `resume_worker`.
  void resume_worker(int id);
  /// `reload`; returns the new generation. With completion::wait the master answers once
  /// the new generation serves and the old one is gone (bounded by start_timeout +
  /// stop_timeout).
  std::uint64_t reload(completion wait = completion::wait);
  /// `scale` to `workers`; with completion::wait returns once exactly that many workers
  /// are ready and none is starting or draining. Throws control_error, or
  /// std::runtime_error on a wait timeout (start_timeout).
  void scale(int workers, completion wait = completion::wait);
  /// Sends `signal_number` (HUP, TTIN, USR2...) to the master through its pidfd. Throws
  /// std::runtime_error when the master has exited.
  void signal(int signal_number);

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
  std::chrono::milliseconds start_timeout_;
};

}  // namespace prefork::testing
