// Control-socket helpers for integration tests: the socket of a server_process, calls that
// fail the test with diagnostics, JSON field access, and readiness as `status` reports it.
#pragma once

#include "support/server_process.hpp"

#include "prefork/control_client.hpp"

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

namespace prefork::test_support {

/// The control socket of `server`: its config's `control`, made absolute against dir().
std::filesystem::path control_socket(const server_process& server);

/// One request on a fresh connection; the `result` of an ok reply. Any failure (an error
/// reply included) fails the test with BOOST_REQUIRE, the request and server.diagnostics().
boost::json::value control_ok(const server_process& server, const boost::json::object& request,
                              std::chrono::milliseconds timeout = std::chrono::seconds(10));

/// One request on a fresh connection that must be answered with an error reply: that
/// error (failure `remote`). Any other outcome fails the test with BOOST_REQUIRE.
control_client_error control_remote_error(const server_process& server, const boost::json::object& request,
                                          std::chrono::milliseconds timeout = std::chrono::seconds(10));

/// `status` as an object (control_ok + object check).
boost::json::object control_status(const server_process& server);
/// `workers` as an array (control_ok + array check).
boost::json::array control_workers(const server_process& server);
/// `stats` as an object (control_ok + object check).
boost::json::object control_stats(const server_process& server);

/// An integer JSON value (int64 or uint64 within range); nullopt for anything else or null.
std::optional<std::int64_t> json_int(const boost::json::value* value);
/// json_int(object.if_contains(key)).
std::optional<std::int64_t> json_int(const boost::json::object& object, std::string_view key);
/// The string at `key`, or "" when absent or not a string.
std::string json_string(const boost::json::object& object, std::string_view key);

/// Polls `status` until every desired worker is ready and none starts or drains (and,
/// when `desired` is given, `workers.desired` equals it). Unlike server_process::wait_ready
/// it reads no log, so it also works when the log goes to a file. False on timeout, with
/// the last status (or error) in `why`.
bool wait_control_ready(const server_process& server, std::chrono::milliseconds timeout, std::string& why,
                        std::optional<std::int64_t> desired = std::nullopt);

}  // namespace prefork::test_support
