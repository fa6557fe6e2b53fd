// Log reopening (SPEC section 2, USR1; section 3, reopen_logs): after logrotate moves the
// log file, USR1 makes the master and its running workers write to a new file by that name.
#include "prefork/testing.hpp"
#include "support/json_fields.hpp"
#include "support/lifecycle.hpp"
#include "support/load.hpp"
#include "support/procfs.hpp"
#include "support/server_helpers.hpp"

#include <boost/json/serialize.hpp>
#include <boost/test/unit_test.hpp>

#include <signal.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>

using namespace prefork::test_support;
using namespace std::chrono_literals;
namespace json = boost::json;
namespace fs = std::filesystem;

namespace {

constexpr int workers = 2;

prefork::testing::server_options file_log_options() {
  auto options = boost_test_options();
  options.config["workers"] = workers;
  options.config["log"] = json::object{{"format", "json"}, {"level", "info"}, {"file", "preforkd.log"}};
  // Readiness is awaited by require_ready_from_file, whose failure shows the log file.
  options.wait = prefork::testing::start_wait::no_wait;
  return options;
}

// Waits until `file` has a line with "msg" == `msg` matching `match`.
std::optional<json::object> wait_for_line_in(const fs::path& file, std::string_view msg,
                                             const std::function<bool(const json::object&)>& match,
                                             std::chrono::milliseconds timeout) {
  std::optional<json::object> found;
  wait_until(
      [&] {
        for (auto& line : find_log_in(file, msg)) {
          if (!match || match(line)) {
            found = std::move(line);
            return true;
          }
        }
        return false;
      },
      timeout, 20ms);
  return found;
}

// Waits until every worker is ready as `status` says (the log goes to the file, not to
// stderr), and the master wants exactly `workers`; a failure shows the log file.
void require_ready_from_file(prefork::testing::server& server) {
  std::string why;
  try {
    server.wait_ready(20s);
    auto status = server.status();
    if (status_workers(status, "desired") != workers || status_workers(status, "ready") != workers ||
        status_workers(status, "draining") != 0)
      why = "status: " + json::serialize(status);
  } catch (const std::exception& error) {
    why = error.what();
  }
  BOOST_REQUIRE_MESSAGE(why.empty(), "not ready: " << why << "\n"
                                                   << prefork::testing::read_file(server.directory() / "preforkd.log"));
}

}  // namespace

BOOST_AUTO_TEST_SUITE(logs)

BOOST_AUTO_TEST_CASE(usr1_reopens_a_moved_log_file_in_master_and_workers) {
  prefork::testing::server server(file_log_options());
  require_ready_from_file(server);
  auto log_file = server.directory() / "preforkd.log";
  auto rotated = server.directory() / "preforkd.log.1";
  auto pids = worker_pids(server);
  BOOST_REQUIRE_EQUAL(pids.size(), static_cast<std::size_t>(workers));
  // Both workers have written to the file already (the master logs "worker ready"; each
  // worker logs at least its start).
  BOOST_TEST(!find_log_in(log_file, "worker ready").empty());
  BOOST_TEST(server.find_log("worker ready").empty(), "log lines went to stderr instead of the file");

  load_options load_config;
  load_config.target = unix_endpoint(server);
  load_config.clients = 8;
  load_generator load(load_config);
  BOOST_REQUIRE(load.wait_successes(300, 30s));

  fs::rename(log_file, rotated);
  server.signal(SIGUSR1);
  auto reopened = wait_for_line_in(log_file, "log files reopened", {}, 10s);
  BOOST_REQUIRE_MESSAGE(reopened.has_value(), "no \"log files reopened\" in a new "
                                                  << log_file.string() << "; rotated file:\n"
                                                  << prefork::testing::read_file(rotated));
  BOOST_TEST(log_int(*reopened, "pid").value_or(-1) == server.pid());
  BOOST_TEST(find_log_in(rotated, "log files reopened").empty());

  // A running worker writes to the new file too: TTOU retires one of the two (it existed
  // before USR1), and its "worker draining" / "worker exiting" lines land in the new file.
  server.signal(SIGTTOU);
  auto retired = wait_for_line_in(log_file, "retiring worker", {}, 10s);
  BOOST_REQUIRE_MESSAGE(retired.has_value(), "no \"retiring worker\" line in the new file");
  auto retired_pid = static_cast<pid_t>(event_pid(*retired).value_or(-1));
  BOOST_TEST(std::binary_search(pids.begin(), pids.end(), retired_pid), "retired " << retired_pid);
  auto exiting = wait_for_line_in(
      log_file, "worker exiting", [&](const json::object& line) { return log_int(line, "pid") == retired_pid; }, 10s);
  BOOST_TEST(exiting.has_value(), "the retired worker's \"worker exiting\" is not in the new file");
  if (exiting) BOOST_TEST(log_string(*exiting, "role") == "worker");
  auto old_lines = json_lines_of(rotated);
  BOOST_TEST(std::none_of(old_lines.begin(), old_lines.end(),
                          [&](const json::object& line) {
                            return log_int(line, "pid") == retired_pid && log_string(line, "msg") == "worker exiting";
                          }),
             "the retired worker still wrote to the moved file");

  // The other worker, also older than USR1, writes to the new file when it stops.
  pid_t other = pids.front() == retired_pid ? pids.back() : pids.front();
  BOOST_REQUIRE(load.wait_successes(load.snapshot().successes + 200, 30s));
  auto result = load.stop();
  BOOST_TEST(result.total_failures() == 0u, result.summary());

  // And the control command does the same: rotate again.
  auto rotated_again = server.directory() / "preforkd.log.2";
  fs::rename(log_file, rotated_again);
  auto reply = server.control({{"cmd", "reopen_logs"}});
  BOOST_TEST(json::serialize(reply) == "{}");
  auto again = wait_for_line_in(log_file, "log files reopened", {}, 10s);
  BOOST_TEST(again.has_value(), "reopen_logs did not create a new file");

  server.signal(SIGTERM);
  auto status = server.wait_exit(30s);
  BOOST_REQUIRE(status.has_value());
  BOOST_TEST(status->code == 0, status->to_string());
  BOOST_TEST(wait_group_gone(server.pid()));
  auto stopped = find_log_in(log_file, "stopped");
  BOOST_REQUIRE_EQUAL(stopped.size(), 1u);
  BOOST_TEST((log_int(stopped[0], "lost") == 0), json::serialize(stopped[0]));
  auto exits = find_log_in(log_file, "worker exiting");
  BOOST_TEST(
      std::any_of(exits.begin(), exits.end(), [&](const json::object& line) { return log_int(line, "pid") == other; }),
      "the other worker's \"worker exiting\" is not in the newest file");
}

BOOST_AUTO_TEST_CASE(workers_write_to_the_log_file_from_their_first_line) {
  // A forked worker closes the master's descriptors and reopens the file: its first lines
  // (the testbed's start warning) must land in the file, not on a reused descriptor.
  auto options = file_log_options();
  options.config["app"] = "testbed";
  prefork::testing::server server(std::move(options));
  require_ready_from_file(server);
  const auto log_file = server.directory() / "preforkd.log";
  const auto warnings = find_log_in(log_file, "testbed app: fault injection enabled, never use in production");
  const auto from_workers = std::count_if(
      warnings.begin(), warnings.end(), [](const json::object& line) { return log_string(line, "role") == "worker"; });
  BOOST_TEST(from_workers == workers, prefork::testing::read_file(log_file));
  BOOST_TEST(server.find_log("worker ready").empty(), "log lines went to stderr instead of the file");
}

BOOST_AUTO_TEST_CASE(exec_workers_log_to_the_file_too) {
  // An exec'd worker gets the log destination as its stderr.
  const char* python = std::getenv("PREFORK_PYTHON");
  BOOST_TEST_REQUIRE(python != nullptr, "PREFORK_PYTHON is not set (ctest sets it)");
  auto options = file_log_options();
  options.config["exec"] = json::array{"python3", "-m", "prefork_wsgi", "tests.wsgi_apps:app"};
  options.environment.emplace_back("PYTHONPATH", python);
  prefork::testing::server server(std::move(options));
  require_ready_from_file(server);
  const auto log_file = server.directory() / "preforkd.log";
  BOOST_TEST(find_log_in(log_file, "cannot exec the worker command").empty(), prefork::testing::read_file(log_file));
  server.signal(SIGTTOU);  // one worker retires: its "worker exiting" is written by Python
  auto exiting = wait_for_line_in(
      log_file, "worker exiting", [](const json::object& line) { return log_string(line, "role") == "worker"; }, 10s);
  BOOST_TEST(exiting.has_value(), prefork::testing::read_file(log_file));
}

BOOST_AUTO_TEST_SUITE_END()
