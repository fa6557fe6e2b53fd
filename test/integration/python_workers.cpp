// Workers in Python: preforkd with `exec` running the stdlib adapter (apps/python,
// `python3 -m prefork_wsgi MODULE:CALLABLE`) serves WSGI apps with the supervision the C++
// workers get: acknowledged handoff (a SIGKILLed worker fails only what it was serving),
// idle keep-alive connections migrated on reload, a WSGI call that blocks past `timeout`
// killed and replaced, and the seed's Flask app with its config values.
#include "prefork/config.hpp"
#include "prefork/testing.hpp"
#include "support/http_client.hpp"
#include "support/json_fields.hpp"
#include "support/lifecycle.hpp"
#include "support/load.hpp"
#include "support/server_helpers.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/test/unit_test.hpp>

#include <csignal>
#include <cstdlib>
#include <string>

using namespace prefork::test_support;
using namespace std::chrono_literals;
namespace json = boost::json;

namespace {

/// apps/python of the source tree (from CMake), where prefork_wsgi and its tests live.
std::string python_root() {
  const char* root = std::getenv("PREFORK_PYTHON");
  BOOST_TEST_REQUIRE(root != nullptr, "PREFORK_PYTHON is not set (ctest sets it)");
  return root;
}

/// preforkd whose workers run `app` (MODULE:CALLABLE) under the Python adapter.
prefork::testing::server_options python_options(const std::string& app, int workers = 2) {
  auto options = boost_test_options();
  options.config["workers"] = workers;
  options.config["exec"] = json::array{"python3", "-m", "prefork_wsgi", json::string(app)};
  options.environment.emplace_back("PYTHONPATH", python_root() + ":" + python_root() + "/examples");
  return options;
}

/// GET /environ on `connection`: the serving worker's pid and generation.
std::pair<long long, long long> who_serves(http_connection& connection) {
  auto response = connection.request("GET", "/environ", 10s);
  BOOST_REQUIRE_MESSAGE(response.has_value(), "GET /environ: " << response.error().message());
  BOOST_REQUIRE_EQUAL(response->status, 200u);
  auto body = json::parse(response->body).as_object();
  return {body.at("pid").to_number<long long>(), body.at("prefork.generation").to_number<long long>()};
}

}  // namespace

BOOST_AUTO_TEST_SUITE(python_workers)

BOOST_AUTO_TEST_CASE(serves_wsgi_over_keep_alive_and_reports_progress) {
  prefork::testing::server server(python_options("tests.wsgi_apps:app"));
  http_connection connection;
  BOOST_REQUIRE(!connection.connect(unix_endpoint(server), 5s));
  for (int i = 0; i < 20; ++i) {
    auto response = connection.request("GET", "/", 10s);
    BOOST_REQUIRE_MESSAGE(response.has_value(), "request " << i << ": " << response.error().message());
    BOOST_TEST(response->status == 200u);
    BOOST_TEST(response->body == "Hello, world!\n");
  }
  // The pid that served is one of the master's workers.
  const auto [pid, generation] = who_serves(connection);
  bool known = false;
  for (const auto& worker : server.workers()) known = known || json_int(worker.as_object(), "pid") == pid;
  BOOST_TEST(known, "pid " << pid << " is not a worker");
  BOOST_TEST(generation == 1);
  // Its progress frames (sent with the close report) feed the master's request count.
  connection.close();
  BOOST_TEST(wait_until([&] { return json_int(server.stats(), "requests").value_or(0) >= 21; }, 5s, 20ms),
             json::serialize(server.stats()));
  require_clean_stop(server);
}

BOOST_AUTO_TEST_CASE(a_killed_worker_fails_only_what_it_was_serving) {
  prefork::testing::server server(python_options("tests.wsgi_apps:app"));
  load_generator load(load_on(server, load_mode::connection_per_request, 8));
  require_more_successes(load, 300, "before the kill");
  const pid_t killed = server.kill_worker(1, SIGKILL);  // returns once a replacement is ready
  require_more_successes(load, 300, "after the kill");
  auto result = load.stop();
  auto exited =
      server.wait_for_log("worker exited", 5s, [&](const json::object& line) { return event_pid(line) == killed; });
  BOOST_REQUIRE_MESSAGE(exited.has_value(), server.log_tail(20));
  // Connections it had not acknowledged went to the other worker; only those it had read
  // from could fail.
  BOOST_TEST(result.total_failures() <= static_cast<std::uint64_t>(log_int(*exited, "in_service").value_or(0)),
             result.summary() << "; " << json::serialize(*exited));
  BOOST_TEST(json_int(server.stats(), "lost").value_or(-1) == 0);
  require_clean_stop(server);
}

BOOST_AUTO_TEST_CASE(reload_hands_idle_keep_alive_connections_to_the_new_generation) {
  prefork::testing::server server(python_options("tests.wsgi_apps:app"));
  http_connection connection;
  BOOST_REQUIRE(!connection.connect(unix_endpoint(server), 5s));
  const auto before = who_serves(connection);
  BOOST_TEST(before.second == 1);
  server.reload();  // returns once the new generation is ready; the old one drains
  // The same connection, idle during the reload, is answered by a new worker: it was
  // handed back to the master and on to generation 2, and the client saw no reset.
  const auto after = who_serves(connection);
  BOOST_TEST(after.second == 2);
  BOOST_TEST(after.first != before.first);
  BOOST_TEST(json_int(server.stats(), "migrated").value_or(0) >= 1);
  require_clean_stop(server);
}

BOOST_AUTO_TEST_CASE(a_wsgi_call_that_blocks_past_timeout_is_killed_and_replaced) {
  auto options = python_options("tests.wsgi_apps:app");
  options.config["timeout"] = 3;  // above Python's start-up on a loaded machine, below the sleep
  prefork::testing::server server(std::move(options));
  http_connection blocked;
  BOOST_REQUIRE(!blocked.connect(unix_endpoint(server), 5s));
  BOOST_REQUIRE(!blocked.send(make_request("GET", "/sleep?ms=30000"), 5s));
  auto timeout = server.wait_for_log("worker timeout", 20s);
  BOOST_REQUIRE_MESSAGE(timeout.has_value(), server.log_tail(30));
  std::string why;
  BOOST_REQUIRE_MESSAGE(wait_settled(server, 2, 30s, &why), why << "\n" << server.log_tail(30));
  auto hello = server.get("/");
  BOOST_TEST(hello.body == "Hello, world!\n");
  require_clean_stop(server);
}

BOOST_AUTO_TEST_CASE(the_flask_hello_app_with_the_seed_config) {
  // The seed's gunicorn.conf.py: workers = 2 x CPUs + 1, a Unix socket, loglevel info.
  auto options = python_options("hello_flask:app");
  options.config["workers"] = "auto";
  options.config["log"] = json::object{{"level", "info"}, {"format", "json"}};
  prefork::testing::server server(std::move(options));
  auto response = server.get("/");
  BOOST_TEST(response.status == 200u);
  BOOST_TEST(response.body == "Hello, world!\n");
  BOOST_TEST(server.status().at("workers").at("ready").to_number<int>() == prefork::auto_worker_count());
  require_clean_stop(server);
}

BOOST_AUTO_TEST_SUITE_END()
