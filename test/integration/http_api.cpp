// The public HTTP API (prefork/http.hpp) through real programs: the json-api example a
// user would write, and the testbed app (built on the same API) for a handler that throws.
#include "prefork/testing.hpp"

#include <boost/test/unit_test.hpp>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <set>
#include <string>

namespace json = boost::json;
namespace fs = std::filesystem;
using namespace std::chrono_literals;
using prefork::testing::server;
using prefork::testing::server_options;

namespace {

/// The json-api example, built beside preforkd (apps/examples/json-api).
server_options json_api_options() {
  const char* preforkd = std::getenv("PREFORKD");
  BOOST_REQUIRE_MESSAGE(preforkd != nullptr, "PREFORKD is not set");
  server_options options;
  options.program = fs::path(preforkd).parent_path() / "json-api";
  BOOST_REQUIRE_MESSAGE(fs::exists(options.program), options.program << " is not built");
  options.config["app"] = "api";
  options.config["workers"] = 2;
  options.on_stop_failure = [](const std::string& message) { BOOST_ERROR(message); };
  return options;
}

std::set<long long> worker_pids(server& s) {
  std::set<long long> pids;
  for (const auto& worker : s.workers()) pids.insert(worker.at("pid").to_number<long long>());
  return pids;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(http_api)

BOOST_AUTO_TEST_CASE(json_api_example_answers_its_routes) {
  server s(json_api_options());
  auto& http = s.http();

  const auto health = http.get("/health");
  BOOST_TEST(health.status == 200u);
  BOOST_TEST(health.body == "ok\n");

  const auto sum = http.post_json("/sum", {{"a", 1}, {"b", 2}});
  BOOST_TEST(sum.status == 200u);
  BOOST_TEST(sum.header("Content-Type").value_or("") == "application/json");
  BOOST_TEST(sum.json() == json::value({{"sum", 3}}));

  const auto malformed = http.post("/sum", R"({"a": 1,)", "application/json");
  BOOST_TEST(malformed.status == 400u);
  BOOST_TEST(malformed.body.starts_with("request body is not valid JSON: "), malformed.body);
  const auto wrong = http.post_json("/sum", {{"a", "1"}, {"b", 2}});
  BOOST_TEST(wrong.status == 400u);
  BOOST_TEST(wrong.body == "expected {\"a\": integer, \"b\": integer}\n");

  const auto get_sum = http.get("/sum");
  BOOST_TEST(get_sum.status == 405u);
  BOOST_TEST(get_sum.header("Allow").value_or("") == "POST");
  BOOST_TEST(http.get("/nowhere").status == 404u);

  const json::value pid = http.get("/pid").json();
  BOOST_TEST(worker_pids(s).count(pid.at("pid").to_number<long long>()) == 1u);
  BOOST_TEST(pid.at("served").to_number<long long>() >= 0);

  const auto later = http.get("/later");
  BOOST_TEST(later.status == 200u);
  BOOST_TEST(later.body == "later\n");
}

BOOST_AUTO_TEST_CASE(json_api_keep_alive_connection_moves_to_the_new_generation_on_reload) {
  server_options options = json_api_options();
  options.config["workers"] = 1;
  server s(options);
  auto& http = s.http();
  const long long before = http.get("/pid").json().at("pid").to_number<long long>();
  s.reload();  // waits until the new generation serves and the old one is gone
  // The same connection, idle during the reload, is served by the new worker.
  const auto moved = http.get("/pid");
  BOOST_TEST(moved.reused);
  BOOST_TEST(http.connections() == 1u);
  const long long after = moved.json().at("pid").to_number<long long>();
  BOOST_TEST(before != after);
  BOOST_TEST(worker_pids(s).count(after) == 1u);
}

BOOST_AUTO_TEST_CASE(json_api_keeps_the_http_limits_and_head) {
  server s(json_api_options());
  auto& http = s.http();
  // A body over http.max_body_bytes (1 MiB by default) is refused before the handler runs.
  const auto huge = http.post("/sum", std::string((1u << 20) + 1024, ' '), "application/json");
  BOOST_TEST(huge.status == 413u);
  // Headers reach the handler's request untouched; a HEAD of a GET route has no body.
  const auto head = http.request("HEAD", "/health");
  BOOST_TEST(head.status == 200u);
  BOOST_TEST(head.body.empty());
  BOOST_TEST(head.header("Content-Length").value_or("") == "3");
}

BOOST_AUTO_TEST_CASE(a_handler_that_throws_is_answered_500_and_logged_and_the_worker_goes_on) {
  server_options options;
  options.config["app"] = "testbed";
  options.config["workers"] = 1;
  options.on_stop_failure = [](const std::string& message) { BOOST_ERROR(message); };
  server s(options);
  const long long pid = s.http().get("/whoami").json().at("pid").to_number<long long>();

  const auto failed = s.http().get("/throw");
  BOOST_TEST(failed.status == 500u);
  BOOST_TEST(failed.body == "Internal Server Error\n");
  const auto line = s.wait_for_log("HTTP handler failed", 5s);
  BOOST_REQUIRE_MESSAGE(line, s.log_tail());
  BOOST_TEST(line->at("worker").to_number<int>() == 1);
  BOOST_TEST(line->at("target").as_string() == "/throw");
  BOOST_TEST(line->at("error").as_string() == "testbed: /throw requested");

  // The same worker answers the next request.
  BOOST_TEST(s.http().get("/whoami").json().at("pid").to_number<long long>() == pid);
  BOOST_TEST(worker_pids(s).count(pid) == 1u);
}

BOOST_AUTO_TEST_SUITE_END()
