// Helpers for tests that drive a prefork::testing::server: fields of its JSON log lines,
// one-off control requests (from any thread), its config rewritten for a reload, its
// workers and group as /proc sees them, and its listeners as test_support endpoints for
// the load generator and the raw HTTP client.
#pragma once

#include "prefork/control_client.hpp"
#include "prefork/testing.hpp"
#include "support/http_client.hpp"
#include "support/load.hpp"

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>
#include <boost/system/result.hpp>

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace prefork::test_support {

/// A string field of a log line, or "" when absent or not a string.
std::string log_string(const boost::json::object& line, std::string_view key);
/// An integer field of a log line, or nullopt when absent or not an integer.
std::optional<long long> log_int(const boost::json::object& line, std::string_view key);
/// The pid an event is about (e.g. the worker of "worker ready"): the logger writes an
/// event field that collides with a line key as `event.<key>`, so `event.pid` when
/// present, else `pid` (the writer's own pid).
std::optional<long long> event_pid(const boost::json::object& line);

/// One control request on a fresh connection to the server's control socket: the
/// `result` of an ok reply, else the error (unreachable, timeout, disconnected, bad_reply,
/// or the master's own error with its code). Unlike server.control() it neither throws
/// nor shares the server's connection: for polling, failure checks and other threads.
prefork::result<boost::json::value> control(const prefork::testing::server& server, const boost::json::object& request,
                                            std::chrono::milliseconds timeout = std::chrono::seconds(10));

/// status.workers.<key> (desired, ready, starting, draining, backoff), -1 when absent.
long long status_workers(const boost::json::object& status, std::string_view key);

/// Writes the server's config file again (beside it, then renamed, so that a reload
/// never reads half a file): server.config() with the top-level keys of `changes`
/// replaced. Throws std::runtime_error when it cannot be written.
void rewrite_config(const prefork::testing::server& server, const boost::json::object& changes);

/// The address logged ("listening" line) for the listener whose `bind` is `bind`, if logged.
std::optional<endpoint> listening_endpoint(const prefork::testing::server& server, std::string_view bind);

/// The server's first `unix:` listener (server.socket_path()) as an endpoint.
endpoint unix_endpoint(const prefork::testing::server& server);

/// The master's current children (its workers), sorted. Empty once it has exited.
std::vector<pid_t> worker_pids(prefork::testing::server& server);

/// True once the server has settled at `desired` workers: status says `desired` ready and
/// nothing starting, draining or backing off, and the master has exactly `desired`
/// children (retired workers have exited). Polls `status` every 20 ms until `timeout`
/// (a control_error counts as not settled); on false `why` (if given) says what was seen last.
bool wait_settled(prefork::testing::server& server, int desired, std::chrono::milliseconds timeout,
                  std::string* why = nullptr);

/// True once no live process of group `pgid` is left (polls up to `timeout`).
bool wait_group_gone(pid_t pgid, std::chrono::milliseconds timeout = std::chrono::seconds(2));

/// Load aimed at the server's first Unix listener: `clients` clients in `mode`, each
/// request bounded by 10 s.
load_options load_on(const prefork::testing::server& server, load_mode mode, int clients);

/// Waits up to 30 s until `load` has counted `count` more successes than now; otherwise
/// fails the test (BOOST_REQUIRE) with "load stalled <phase>" and the load's summary.
void require_more_successes(const load_generator& load, std::uint64_t count, const char* phase);

/// Stops the server as an orchestrator does and checks that it went cleanly: TERM, exit 0
/// within 30 s, exactly one "stopped" log line saying no connection was lost, and no
/// process of its group left. Returns that line, for further checks (BOOST_REQUIRE and
/// BOOST_TEST report each failure).
boost::json::object require_clean_stop(prefork::testing::server& server);

/// server_options whose stop failures are reported with BOOST_ERROR instead of abort().
prefork::testing::server_options boost_test_options();

}  // namespace prefork::test_support
