// SIGKILL of a worker under load (SPEC section 7): only the requests that worker was
// serving may fail, no accepted connection is lost, and a replacement serves.
#include "prefork/testing.hpp"
#include "support/http_client.hpp"
#include "support/json_fields.hpp"
#include "support/lifecycle.hpp"
#include "support/load.hpp"
#include "support/procfs.hpp"
#include "support/server_helpers.hpp"

#include <boost/json/serialize.hpp>
#include <boost/test/unit_test.hpp>

#include <signal.h>

#include <algorithm>
#include <thread>

using namespace prefork::test_support;
using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;

BOOST_AUTO_TEST_SUITE(crash)

BOOST_AUTO_TEST_CASE(sigkill_of_a_worker_under_load_loses_nothing) {
  constexpr int workers = 3;
  constexpr int clients = 16;
  auto options = boost_test_options();
  options.config["workers"] = workers;
  prefork::testing::server server(std::move(options));
  auto ready_at = clock_type::now();
  auto before = worker_pids(server);
  BOOST_REQUIRE_EQUAL(before.size(), static_cast<std::size_t>(workers));

  load_options load_config;
  load_config.target = unix_endpoint(server);
  load_config.clients = clients;
  load_config.mode = load_mode::connection_per_request;
  load_generator load(load_config);
  bool going = load.wait_successes(300, 20s);
  BOOST_REQUIRE_MESSAGE(going, "load did not get going: " << load.snapshot().summary());

  // Past restart.min_uptime_ms (1 s by default) the victim is not "dying young": its
  // replacement must come at once, not after a backoff delay.
  std::this_thread::sleep_until(ready_at + 1500ms);
  pid_t victim = before.front();
  auto killed_at = clock_type::now();
  BOOST_REQUIRE(::kill(victim, SIGKILL) == 0);

  // A replacement appears: the master has `workers` children again, the victim not among them.
  std::vector<pid_t> after;
  do {
    after = worker_pids(server);
    if (after.size() == before.size() && !std::binary_search(after.begin(), after.end(), victim)) break;
    std::this_thread::sleep_for(5ms);
  } while (clock_type::now() - killed_at < 10s);
  auto replaced_after = std::chrono::duration_cast<std::chrono::milliseconds>(clock_type::now() - killed_at);
  BOOST_TEST_MESSAGE("replacement worker forked " << replaced_after.count() << " ms after SIGKILL");
  BOOST_REQUIRE_MESSAGE(after.size() == before.size() && !std::binary_search(after.begin(), after.end(), victim),
                        "no replacement worker within 10 s\n"
                            << server.log_tail(40));
  std::vector<pid_t> fresh;
  std::set_difference(after.begin(), after.end(), before.begin(), before.end(), std::back_inserter(fresh));
  BOOST_REQUIRE_EQUAL(fresh.size(), 1u);
  pid_t replacement = fresh.front();

  auto ready = server.wait_for_log("worker ready", 10s,
                                   [&](const boost::json::object& line) { return event_pid(line) == replacement; });
  BOOST_REQUIRE_MESSAGE(ready.has_value(), "the replacement never logged \"worker ready\"\n" << server.log_tail(40));
  auto ready_after = std::chrono::duration_cast<std::chrono::milliseconds>(clock_type::now() - killed_at);
  BOOST_TEST_MESSAGE("replacement ready (seen in the log) " << ready_after.count() << " ms after SIGKILL");
  // SPEC section 7 asks for 100 ms; the bound leaves room for a loaded 2-core machine and
  // the 20 ms log polling, and still catches a backoff or a restart that waits for a timer.
  BOOST_TEST(ready_after.count() < 1000, "the replacement took " << ready_after.count() << " ms to be ready");

  // Service goes on after the kill.
  auto so_far = load.snapshot().successes;
  bool going_on = load.wait_successes(so_far + 300, 20s);
  BOOST_TEST(going_on, "load stalled after the kill: " << load.snapshot().summary());
  auto result = load.stop();
  BOOST_TEST_MESSAGE("load: " << result.summary());
  BOOST_TEST(result.total_failures() <= static_cast<std::uint64_t>(clients), result.summary());
  BOOST_TEST(result.failed(failure_kind::connect_refused) == 0u, result.summary());
  BOOST_TEST(result.failed(failure_kind::bad_status) == 0u, result.summary());
  // The victim's connections close with it (reset or EOF); a request that hangs instead
  // was neither served nor closed: a connection the master kept or re-dispatched without
  // the bytes the dead worker had already read.
  BOOST_TEST(result.failed(failure_kind::timeout) == 0u, result.summary());

  // The replacement serves: hold two connections per worker open (least-connections spreads
  // them), check the replacement holds a client socket besides its channel, use them all.
  // The load's connections are closed, but the master learns it from the workers' reports:
  // until it has, a worker it still counts as busy gets none of the held connections.
  std::string active;
  bool idle = wait_until(
      [&] {
        active.clear();
        bool none = true;
        for (const auto& worker : server.workers()) {
          auto count = json_int(worker.as_object(), "active").value_or(-1);
          active += std::to_string(count) + " ";
          none = none && count == 0;
        }
        return none;
      },
      5s, 10ms);
  BOOST_REQUIRE_MESSAGE(idle, "after the load the workers still report active connections: " << active);
  std::vector<http_connection> held(2 * workers);
  for (auto& connection : held) {
    BOOST_REQUIRE(!connection.connect(unix_endpoint(server), 5s));
    auto response = connection.request("GET", "/", 5s);
    BOOST_REQUIRE_MESSAGE(response.has_value(), response.error().message());
    BOOST_TEST(response->status == 200u);
  }
  BOOST_TEST(socket_inodes(replacement).size() >= 2u,
             "the replacement " << replacement << " holds no client connection of " << held.size());
  for (auto& connection : held) {
    auto response = connection.request("GET", "/", 5s);
    BOOST_REQUIRE_MESSAGE(response.has_value(), response.error().message());
    BOOST_TEST(response->status == 200u);
  }
  held.clear();

  auto exited = server.find_log("worker exited");
  auto victim_line = std::find_if(exited.begin(), exited.end(),
                                  [&](const boost::json::object& line) { return event_pid(line) == victim; });
  BOOST_REQUIRE_MESSAGE(victim_line != exited.end(), "no \"worker exited\" line for " << victim << "\n"
                                                                                      << server.log_tail(40));
  BOOST_TEST(log_string(*victim_line, "signal") == "KILL", boost::json::serialize(*victim_line));

  const boost::json::object stopped = require_clean_stop(server);
  BOOST_TEST((log_int(stopped, "worker_crashes") == 1), boost::json::serialize(stopped));
  BOOST_TEST((log_int(stopped, "accepted").value_or(-1) >= static_cast<long long>(result.successes)),
             boost::json::serialize(stopped));
}

BOOST_AUTO_TEST_SUITE_END()
