// Helpers for tests that drive a prefork::testing::server: its JSON log (stderr.log)
// parsed into lines, its workers and group as /proc sees them, and its Unix listener as a
// test_support endpoint for the load generator and the raw HTTP client.
#pragma once

#include "prefork/testing.hpp"
#include "support/http_client.hpp"

#include <boost/json/object.hpp>

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace prefork::test_support {

/// Every line of `text` that is a JSON object, in order (other lines are skipped).
std::vector<boost::json::object> parse_log_lines(std::string_view text);

/// The lines of the server's log whose "msg" is `msg`.
std::vector<boost::json::object> find_log(const prefork::testing::server& server, std::string_view msg);

/// Polls the server's log (every 20 ms) until a line with "msg" == `msg` satisfies
/// `match`; nullopt when `timeout` passes first.
std::optional<boost::json::object> wait_for_log(const prefork::testing::server& server, std::string_view msg,
                                                std::chrono::milliseconds timeout,
                                                const std::function<bool(const boost::json::object&)>& match = {});

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

/// server_options whose stop failures are reported with BOOST_ERROR instead of abort().
prefork::testing::server_options boost_test_options();

}  // namespace prefork::test_support
