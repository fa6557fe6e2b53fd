#include "master/master_stats.hpp"

#include <boost/json/serialize.hpp>
#include <boost/test/unit_test.hpp>

#include <string>
#include <variant>

BOOST_AUTO_TEST_SUITE(master_stats)

BOOST_AUTO_TEST_CASE(every_counter_is_reported_under_its_spec_name) {
  prefork::detail::master_stats stats;
  stats.accepted = 1;
  stats.dispatched = 2;
  stats.redispatched = 3;
  stats.migrated = 4;
  stats.lost = 5;
  stats.accept_pauses = 6;
  stats.worker_exits = 7;
  stats.worker_crashes = 8;
  stats.worker_timeouts = 9;
  stats.worker_recycled = 10;
  stats.reloads = 11;
  stats.requests = 12;
  const auto json = prefork::detail::to_json(stats);
  BOOST_TEST(boost::json::serialize(json) ==
             R"({"accepted":1,"dispatched":2,"redispatched":3,"migrated":4,"lost":5,"accept_pauses":6,)"
             R"("worker_exits":7,"worker_crashes":8,"worker_timeouts":9,"worker_recycled":10,"reloads":11,)"
             R"("requests":12})");
  // The log line carries the same fields, in the same order.
  std::uint64_t expected = 1;
  for (const auto& field : prefork::detail::stats_fields(stats)) {
    BOOST_TEST(json.contains(field.key), std::string(field.key));
    BOOST_TEST(std::get<std::uint64_t>(field.value) == expected++);
  }
}

BOOST_AUTO_TEST_SUITE_END()
