// Scaling under load (SPEC sections 2, 3 and 7): TTIN/TTOU and the control `scale` change
// the worker count with zero failed requests, and TTOU never goes below one worker.
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
#include <thread>

using namespace prefork::test_support;
using namespace std::chrono_literals;
namespace json = boost::json;

namespace {

prefork::testing::server_options scale_options(int workers) {
  auto options = boost_test_options();
  options.config["app"] = "testbed";
  options.config["workers"] = workers;
  options.config["graceful_timeout"] = 20;
  return options;
}

void require_settled(prefork::testing::server& server, int desired, const char* phase) {
  std::string why;
  bool settled = wait_settled(server, desired, 30s, &why);
  BOOST_REQUIRE_MESSAGE(settled, phase << ": not settled at " << desired << " workers: " << why << "\n"
                                       << server.log_tail(40));
}

// Waits until status says `desired` (the master has handled the signal).
void require_desired(prefork::testing::server& server, int desired, const char* phase) {
  long long seen = -1;
  bool reached = wait_until(
      [&] {
        try {
          seen = status_workers(server.status(), "desired");
        } catch (const prefork::testing::control_error&) {
          seen = -1;
        }
        return seen == desired;
      },
      20s, 20ms);
  BOOST_REQUIRE_MESSAGE(reached, phase << ": desired is " << seen << ", expected " << desired);
}

bool has_scaling_line(prefork::testing::server& server, long long from, long long to) {
  auto lines = server.find_log("scaling");
  return std::any_of(lines.begin(), lines.end(), [&](const json::object& line) {
    return log_int(line, "from") == from && log_int(line, "to") == to;
  });
}

}  // namespace

BOOST_AUTO_TEST_SUITE(scale)

BOOST_AUTO_TEST_CASE(ttin_then_ttou_under_load) {
  prefork::testing::server server(scale_options(2));
  auto initial = worker_pids(server);
  load_generator load(load_on(server, load_mode::connection_per_request, 12));
  load_generator keep_alive(load_on(server, load_mode::keep_alive, 4));
  require_more_successes(load, 200, "at start");

  BOOST_REQUIRE_NO_THROW(server.signal(SIGTTIN));
  require_settled(server, 3, "after TTIN");
  BOOST_TEST(has_scaling_line(server, 2, 3));
  auto grown = worker_pids(server);
  BOOST_TEST(std::includes(grown.begin(), grown.end(), initial.begin(), initial.end()),
             "TTIN replaced workers instead of adding one");
  require_more_successes(load, 300, "at 3 workers");
  // The new worker takes connections (least-connections prefers it while it has fewer).
  std::vector<pid_t> added;
  std::set_difference(grown.begin(), grown.end(), initial.begin(), initial.end(), std::back_inserter(added));
  BOOST_REQUIRE_EQUAL(added.size(), 1u);
  auto records = server.workers();
  auto record = std::find_if(records.begin(), records.end(), [&](const json::value& entry) {
    return json_int(entry.as_object(), "pid").value_or(-1) == added.front();
  });
  BOOST_REQUIRE(record != records.end());
  BOOST_TEST(json_int(record->as_object(), "served").value_or(0) > 0, json::serialize(*record));

  BOOST_REQUIRE_NO_THROW(server.signal(SIGTTOU));
  require_settled(server, 2, "after TTOU");
  BOOST_TEST(has_scaling_line(server, 3, 2));
  require_more_successes(load, 300, "back at 2 workers");

  auto result = load.stop();
  auto keep_alive_result = keep_alive.stop();
  auto stats = server.stats();
  BOOST_TEST_MESSAGE("TTIN/TTOU under load: " << result.summary() << "; keep-alive " << keep_alive_result.summary()
                                              << "; stats " << json::serialize(stats));
  BOOST_TEST(result.total_failures() == 0u, result.summary());
  BOOST_TEST(keep_alive_result.total_failures() == 0u, keep_alive_result.summary());
  BOOST_TEST(json_int(stats, "lost").value_or(-1) == 0);
  BOOST_TEST(json_int(stats, "worker_crashes").value_or(-1) == 0);
  const json::object stopped = require_clean_stop(server);
  BOOST_TEST((log_int(stopped, "worker_crashes") == 0), json::serialize(stopped));
}

BOOST_AUTO_TEST_CASE(scale_via_control_under_load) {
  prefork::testing::server server(scale_options(2));
  load_generator load(load_on(server, load_mode::connection_per_request, 12));
  require_more_successes(load, 200, "at start");

  auto up = server.control({{"cmd", "scale"}, {"workers", 4}});
  BOOST_TEST(json::serialize(up) == R"({"desired":4})");
  require_settled(server, 4, "after scale 4");
  BOOST_TEST(has_scaling_line(server, 2, 4));
  auto records = server.workers();
  BOOST_TEST(records.size() == 4u, json::serialize(records));
  for (const auto& entry : records)
    BOOST_TEST(json_string(entry.as_object(), "state") == "ready", json::serialize(entry));
  require_more_successes(load, 300, "at 4 workers");

  // A bad request changes nothing and is an error reply.
  std::string error_code = "(no error)";
  try {
    auto reply = server.control({{"cmd", "scale"}, {"workers", 0}});
    BOOST_ERROR("scale to 0 was accepted: " << json::serialize(reply));
  } catch (const prefork::testing::control_error& error) {
    error_code = prefork::control_code_name(error.code());
    BOOST_TEST_MESSAGE("scale to 0: " << error.code() << ": " << error.what());
  }
  BOOST_TEST(error_code == "bad_request");
  BOOST_TEST(status_workers(server.status(), "desired") == 4);

  auto down = server.control({{"cmd", "scale"}, {"workers", 1}});
  BOOST_TEST(json::serialize(down) == R"({"desired":1})");
  require_settled(server, 1, "after scale 1");
  BOOST_TEST(has_scaling_line(server, 4, 1));
  require_more_successes(load, 300, "at 1 worker");

  auto result = load.stop();
  BOOST_TEST_MESSAGE("scale via control under load: " << result.summary());
  BOOST_TEST(result.total_failures() == 0u, result.summary());
  BOOST_TEST(json_int(server.stats(), "lost").value_or(-1) == 0);
  const json::object stopped = require_clean_stop(server);
  BOOST_TEST((log_int(stopped, "worker_crashes") == 0), json::serialize(stopped));
}

BOOST_AUTO_TEST_CASE(ttou_never_goes_below_one_worker) {
  prefork::testing::server server(scale_options(2));
  load_generator load(load_on(server, load_mode::connection_per_request, 8));
  require_more_successes(load, 200, "at start");

  BOOST_REQUIRE_NO_THROW(server.signal(SIGTTOU));
  require_desired(server, 1, "after the first TTOU");
  require_settled(server, 1, "after the first TTOU");
  // Each TTOU is handled before the next is sent (pending ones would merge).
  for (int i = 0; i < 3; ++i) {
    BOOST_REQUIRE_NO_THROW(server.signal(SIGTTOU));
    std::this_thread::sleep_for(200ms);
    BOOST_TEST(status_workers(server.status(), "desired") == 1);
  }
  require_settled(server, 1, "after more TTOUs");
  BOOST_TEST(server.find_log("scaling").size() == 1u, "a TTOU at one worker logged \"scaling\"");
  require_more_successes(load, 300, "at 1 worker");

  // Still scalable: TTIN goes to 2 again.
  BOOST_REQUIRE_NO_THROW(server.signal(SIGTTIN));
  require_settled(server, 2, "after TTIN");
  BOOST_TEST(has_scaling_line(server, 1, 2));
  require_more_successes(load, 300, "at 2 workers");

  auto result = load.stop();
  BOOST_TEST(result.total_failures() == 0u, result.summary());
  const json::object stopped = require_clean_stop(server);
  BOOST_TEST((log_int(stopped, "worker_crashes") == 0), json::serialize(stopped));
}

BOOST_AUTO_TEST_SUITE_END()
