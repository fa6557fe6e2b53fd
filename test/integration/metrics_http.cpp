// The Prometheus endpoint of a real preforkd (SPEC section 2, `metrics`): served at
// /metrics on the address it logs, in the text format, with counters that agree with the
// control socket's `stats` and worker gauges that agree with `status`.
#include "prefork/testing.hpp"
#include "support/http_client.hpp"
#include "support/json_fields.hpp"
#include "support/server_helpers.hpp"

#include <boost/json/serialize.hpp>
#include <boost/test/unit_test.hpp>

#include <cstdlib>
#include <map>
#include <sstream>
#include <thread>

using namespace prefork::test_support;
using namespace std::chrono_literals;
namespace json = boost::json;
using clock_type = std::chrono::steady_clock;

namespace {

constexpr auto request_timeout = 5s;

// A parsed exposition: samples by `name{labels}` (as written), and the TYPE of each family.
struct exposition {
  std::map<std::string, double> samples;
  std::map<std::string, std::string> types;
  std::vector<std::string> malformed;
};

exposition parse_exposition(const std::string& text) {
  exposition parsed;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    if (line.starts_with("# TYPE ")) {
      std::istringstream fields(line.substr(7));
      std::string name, type;
      fields >> name >> type;
      parsed.types[name] = type;
      continue;
    }
    if (line.starts_with("#")) continue;
    // "name{labels} value [timestamp]": the value follows the last space outside braces.
    std::size_t close = line.rfind('}');
    std::size_t space = line.find(' ', close == std::string::npos ? 0 : close);
    if (space == std::string::npos) {
      parsed.malformed.push_back(line);
      continue;
    }
    std::string key = line.substr(0, space);
    std::string value = line.substr(space + 1);
    if (auto blank = value.find(' '); blank != std::string::npos) value.resize(blank);
    char* end = nullptr;
    double number = std::strtod(value.c_str(), &end);
    if (end == value.c_str() || *end != '\0') {
      parsed.malformed.push_back(line);
      continue;
    }
    parsed.samples[key] = number;
  }
  return parsed;
}

std::optional<endpoint> metrics_endpoint(const prefork::testing::server& server) {
  auto logged = server.wait_for_log("metrics endpoint", 10s);
  if (!logged) return std::nullopt;
  return endpoint::parse(log_string(*logged, "address"));
}

}  // namespace

BOOST_AUTO_TEST_SUITE(metrics_http)

BOOST_AUTO_TEST_CASE(metrics_agree_with_stats_and_status) {
  auto options = boost_test_options();
  options.config["metrics"] = "127.0.0.1:0";
  prefork::testing::server server(std::move(options));
  auto where = metrics_endpoint(server);
  BOOST_REQUIRE_MESSAGE(where.has_value(), "no parsable \"metrics endpoint\" log line\n" << server.log_tail(40));
  BOOST_TEST((where->type == endpoint::kind::tcp));
  BOOST_TEST(where->port != 0);

  constexpr int requests = 25;
  auto baseline = json_int(server.stats(), "requests").value_or(0);
  for (int i = 0; i < requests; ++i) {
    auto response = http_get(unix_endpoint(server), "/", request_timeout);
    BOOST_REQUIRE_MESSAGE(response.has_value(), "GET / #" << i << ": " << response.error().message());
    BOOST_REQUIRE_EQUAL(response->status, 200u);
  }
  // Worker counters reach the master with heartbeats.
  auto counted_by = clock_type::now() + 15s;
  while (json_int(server.stats(), "requests").value_or(0) < baseline + requests && clock_type::now() < counted_by) {
    std::this_thread::sleep_for(50ms);
  }

  auto before = server.stats();
  auto response = http_get(*where, "/metrics", request_timeout);
  auto after = server.stats();
  auto status = server.status();
  BOOST_REQUIRE_MESSAGE(response.has_value(), "GET /metrics: " << response.error().message());
  BOOST_REQUIRE_EQUAL(response->status, 200u);
  auto content_type = response->header("Content-Type").value_or("");
  BOOST_TEST(content_type.starts_with("text/plain"), "Content-Type: " << content_type);

  auto parsed = parse_exposition(response->body);
  BOOST_TEST(parsed.malformed.empty(),
             "malformed lines, first: " << (parsed.malformed.empty() ? "" : parsed.malformed[0]));
  BOOST_TEST_MESSAGE("stats before: " << json::serialize(before) << "\nstats after: " << json::serialize(after));

  const std::map<std::string, std::string> counters{
      {"prefork_connections_accepted_total", "accepted"},
      {"prefork_connections_dispatched_total", "dispatched"},
      {"prefork_connections_redispatched_total", "redispatched"},
      {"prefork_connections_migrated_total", "migrated"},
      {"prefork_connections_lost_total", "lost"},
      {"prefork_accept_pauses_total", "accept_pauses"},
      {"prefork_worker_exits_total", "worker_exits"},
      {"prefork_worker_crashes_total", "worker_crashes"},
      {"prefork_worker_timeouts_total", "worker_timeouts"},
      {"prefork_worker_recycled_total", "worker_recycled"},
      {"prefork_reloads_total", "reloads"},
      {"prefork_requests_total", "requests"},
  };
  for (const auto& [metric, stat] : counters) {
    BOOST_TEST_CONTEXT(metric) {
      auto sample = parsed.samples.find(metric);
      BOOST_REQUIRE_MESSAGE(sample != parsed.samples.end(), "missing from /metrics:\n" << response->body);
      BOOST_TEST(parsed.types[metric] == "counter");
      auto low = json_int(before, stat);
      auto high = json_int(after, stat);
      BOOST_REQUIRE(low && high);
      // Read between two `stats` calls: the counter lies between them.
      BOOST_TEST(sample->second >= static_cast<double>(*low), sample->second << " < stats." << stat << " " << *low);
      BOOST_TEST(sample->second <= static_cast<double>(*high), sample->second << " > stats." << stat << " " << *high);
    }
  }
  BOOST_TEST(parsed.samples["prefork_requests_total"] >= static_cast<double>(baseline + requests));
  BOOST_TEST(parsed.samples["prefork_connections_accepted_total"] >= static_cast<double>(requests));
  BOOST_TEST(parsed.samples["prefork_connections_lost_total"] == 0.0);

  const auto& counts = status.at("workers").as_object();
  auto ready = parsed.samples.find("prefork_workers{state=\"ready\"}");
  BOOST_REQUIRE_MESSAGE(ready != parsed.samples.end(), "no prefork_workers{state=\"ready\"}:\n" << response->body);
  BOOST_TEST(parsed.types["prefork_workers"] == "gauge");
  BOOST_TEST(ready->second == static_cast<double>(json_int(counts, "ready").value_or(-1)), json::serialize(status));
  BOOST_TEST(ready->second == 2.0);
  BOOST_TEST(parsed.samples["prefork_workers_desired"] ==
             static_cast<double>(json_int(counts, "desired").value_or(-1)));
  BOOST_TEST(parsed.samples["prefork_generation"] == static_cast<double>(json_int(status, "generation").value_or(-1)));
  BOOST_TEST(parsed.samples.count("prefork_uptime_seconds") == 1u);

  // Scraped again, as Prometheus does: on the same connection if the endpoint keeps it.
  http_connection scraper;
  BOOST_REQUIRE(!scraper.connect(*where, request_timeout));
  for (int i = 0; i < 3; ++i) {
    auto scrape = scraper.request("GET", "/metrics", request_timeout);
    BOOST_REQUIRE_MESSAGE(scrape.has_value(), "scrape #" << i << ": " << scrape.error().message());
    BOOST_TEST(scrape->status == 200u);
    BOOST_TEST(scrape->body.find("prefork_requests_total") != std::string::npos);
    if (!scrape->keep_alive) BOOST_REQUIRE(!scraper.connect(*where, request_timeout));
  }
  BOOST_TEST(server.running());
}

BOOST_AUTO_TEST_SUITE_END()
