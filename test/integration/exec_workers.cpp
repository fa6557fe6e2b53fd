// Exec'd workers (config `exec`, lib/PROTOCOL.md) that fail: a command that cannot run or
// exits at once backs off like a crashing worker and is logged with its command and exit
// status; a worker that writes garbage on its channel is killed as a protocol error; one
// that is silent, or alive but never ready, is killed after `timeout`. The master stays up
// and answers its control socket throughout.
#include "prefork/testing.hpp"
#include "support/json_fields.hpp"
#include "support/server_helpers.hpp"

#include <boost/json/serialize.hpp>
#include <boost/test/unit_test.hpp>

#include <string>

using namespace prefork::test_support;
using namespace std::chrono_literals;
namespace json = boost::json;

namespace {

// One worker running `command`, not waited for (it will never be ready), with a short
// timeout and quick restarts so that the failure repeats within a test.
prefork::testing::server_options exec_options(json::array command) {
  auto options = boost_test_options();
  options.config["workers"] = 1;
  options.config["exec"] = std::move(command);
  options.config["timeout"] = 0.5;
  options.config["restart"] =
      json::object{{"min_uptime_ms", 5000}, {"backoff_initial_ms", 50}, {"backoff_max_ms", 200}};
  options.wait = prefork::testing::start_wait::no_wait;
  return options;
}

// The first "worker exited" line with `key` equal to `value` (a number), within 10 s.
std::optional<json::object> wait_for_exit(prefork::testing::server& server, std::string_view key, long long value) {
  return server.wait_for_log("worker exited", 10s,
                             [&](const json::object& line) { return log_int(line, key).value_or(-1) == value; });
}

// The "worker exited" line of the worker that `event` (a line naming it) is about.
json::object require_exit_of(prefork::testing::server& server, const json::object& event) {
  auto exited = server.wait_for_log("worker exited", 10s,
                                    [&](const json::object& line) { return event_pid(line) == event_pid(event); });
  BOOST_REQUIRE_MESSAGE(exited.has_value(), "no exit of the worker of " << json::serialize(event) << "\n"
                                                                        << server.log_tail(20));
  return *exited;
}

void require_master_healthy(prefork::testing::server& server) {
  BOOST_TEST(server.running());
  BOOST_TEST(json::serialize(server.control({{"cmd", "ping"}})) == "\"pong\"");
  BOOST_TEST(server.status().at("workers").at("desired").to_number<int>() == 1);
}

}  // namespace

BOOST_AUTO_TEST_SUITE(exec_workers)

BOOST_AUTO_TEST_CASE(a_command_that_cannot_run_exits_127_and_backs_off) {
  prefork::testing::server server(exec_options({"/nonexistent/worker", "--flag"}));
  auto cannot = server.wait_for_log("cannot exec the worker command", 10s);
  BOOST_REQUIRE_MESSAGE(cannot.has_value(), server.log_tail(20));
  BOOST_TEST(log_string(*cannot, "command") == "/nonexistent/worker --flag");
  BOOST_TEST(log_string(*cannot, "error") == "No such file or directory");
  auto exited = wait_for_exit(server, "status", 127);
  BOOST_REQUIRE_MESSAGE(exited.has_value(), server.log_tail(20));
  BOOST_TEST(log_string(*exited, "command") == "/nonexistent/worker --flag");
  // Dying young again and again: the slot backs off instead of forking in a loop.
  auto backoff = server.wait_for_log("worker slot backing off", 10s,
                                     [](const json::object& line) { return log_int(line, "streak").value_or(0) >= 2; });
  BOOST_TEST(backoff.has_value(), server.log_tail(20));
  require_master_healthy(server);
}

BOOST_AUTO_TEST_CASE(a_command_that_exits_at_once_is_logged_with_its_status) {
  prefork::testing::server server(exec_options({"/bin/sh", "-c", "exit 3"}));
  auto exited = wait_for_exit(server, "status", 3);
  BOOST_REQUIRE_MESSAGE(exited.has_value(), server.log_tail(20));
  BOOST_TEST(log_string(*exited, "command") == "/bin/sh -c exit 3");
  BOOST_TEST(log_string(*exited, "level") == "error");
  require_master_healthy(server);
}

BOOST_AUTO_TEST_CASE(garbage_on_the_channel_is_a_protocol_error) {
  // Seven bytes: shorter than a frame header.
  prefork::testing::server server(exec_options({"/bin/sh", "-c", "printf garbage >&3; exec sleep 60"}));
  auto violation = server.wait_for_log("worker protocol error", 10s);
  BOOST_REQUIRE_MESSAGE(violation.has_value(), server.log_tail(20));
  BOOST_TEST(log_string(*violation, "error") == "malformed channel frame");
  const json::object exited = require_exit_of(server, *violation);
  BOOST_TEST(log_string(exited, "signal") == "KILL");
  require_master_healthy(server);
}

// A worker that sends what `send_frames` (Python statements using frame(type, body) on
// the channel) says, then sleeps. Its timeout is above Python's start-up on a loaded
// machine, which must not look like silence.
prefork::testing::server_options python_worker(const std::string& send_frames) {
  const std::string script =
      "import socket, struct, time\n"
      "channel = socket.socket(fileno=3)\n"
      "def frame(kind, body):\n"
      "    channel.send(struct.pack('=BBHI', kind, 1, 0, len(body)) + body)\n" +
      send_frames + "time.sleep(60)\n";
  auto options = exec_options({"python3", "-c", json::string(script)});
  options.config["timeout"] = 3;
  return options;
}

// Starts `options`, waits for its "worker protocol error" and checks the reason.
void require_protocol_error(prefork::testing::server_options options, std::string_view reason) {
  prefork::testing::server server(std::move(options));
  auto violation = server.wait_for_log("worker protocol error", 30s);
  BOOST_REQUIRE_MESSAGE(violation.has_value(), server.log_tail(20));
  BOOST_TEST(log_string(*violation, "error").find(reason) != std::string::npos, json::serialize(*violation));
  BOOST_TEST(log_string(require_exit_of(server, *violation), "signal") == "KILL");
  require_master_healthy(server);
}

BOOST_AUTO_TEST_CASE(an_undecodable_control_message_is_a_protocol_error) {
  // A well-formed control frame (type 3) whose JSON is not a message.
  require_protocol_error(python_worker("frame(3, b'{\"type\":\"hello\"}')\n"), "does not decode");
}

BOOST_AUTO_TEST_CASE(acknowledging_more_than_was_sent_is_a_protocol_error) {
  // progress (type 2): received 5, closed 0, requests 0; the master sent nothing.
  require_protocol_error(python_worker("frame(2, struct.pack('=QQQ', 5, 0, 0))\n"),
                         "acknowledged 5 descriptors, more than it was sent");
}

BOOST_AUTO_TEST_CASE(a_handoff_from_a_worker_is_a_protocol_error) {
  // handoff (type 1) carrying its own stdin and one listener index.
  require_protocol_error(
      python_worker("channel.sendmsg([struct.pack('=BBHII', 1, 1, 0, 4, 0)], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, "
                    "struct.pack('i', 0))])\n"),
      "a handoff frame");
}

BOOST_AUTO_TEST_CASE(a_progress_frame_of_the_wrong_size_is_a_protocol_error) {
  // The frame decoder checks each type's payload size: five bytes are no counters.
  require_protocol_error(python_worker("frame(2, b'short')\n"), "malformed channel frame");
}

BOOST_AUTO_TEST_CASE(a_silent_worker_is_killed_after_timeout) {
  prefork::testing::server server(exec_options({"/bin/sleep", "60"}));
  auto timeout = server.wait_for_log("worker timeout", 10s);
  BOOST_REQUIRE_MESSAGE(timeout.has_value(), server.log_tail(20));
  const json::object exited = require_exit_of(server, *timeout);
  BOOST_TEST(log_string(exited, "signal") == "KILL");
  require_master_healthy(server);
}

BOOST_AUTO_TEST_CASE(a_worker_alive_but_never_ready_is_killed_after_timeout) {
  // Heartbeats every 50 ms, never "ready".
  auto options = python_worker(
      "while True:\n"
      "    frame(3, b'{\"type\":\"heartbeat\",\"open\":0,\"served\":0}')\n"
      "    time.sleep(0.05)\n");
  prefork::testing::server server(std::move(options));
  auto late = server.wait_for_log("worker not ready in time", 30s);
  BOOST_REQUIRE_MESSAGE(late.has_value(), server.log_tail(20));
  for (const auto& silent : server.find_log("worker timeout"))
    BOOST_TEST((event_pid(silent) != event_pid(*late)), "it sent heartbeats: it was not silent");
  (void)require_exit_of(server, *late);
  require_master_healthy(server);
}

BOOST_AUTO_TEST_SUITE_END()
