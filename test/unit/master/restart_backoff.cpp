#include "master/restart_backoff.hpp"

#include <boost/test/unit_test.hpp>

#include <vector>

using namespace std::chrono_literals;
using std::chrono::milliseconds;

namespace {

prefork::restart_config make_config(milliseconds min_uptime, milliseconds initial, milliseconds max) {
  prefork::restart_config cfg;
  cfg.min_uptime = min_uptime;
  cfg.backoff_initial = initial;
  cfg.backoff_max = max;
  return cfg;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(restart_backoff)

BOOST_AUTO_TEST_CASE(schedule_doubles_and_caps) {
  prefork::detail::restart_backoff backoff{prefork::restart_config{}};  // 1000, 100, 30000
  BOOST_TEST(backoff.streak() == 0u);
  std::vector<long> delays;
  for (int i = 0; i < 12; ++i) delays.push_back(backoff.on_exit(10ms).count());
  const std::vector<long> expected{100, 200, 400, 800, 1600, 3200, 6400, 12800, 25600, 30000, 30000, 30000};
  BOOST_TEST(delays == expected, boost::test_tools::per_element());
  BOOST_TEST(backoff.streak() == 12u);
}

BOOST_AUTO_TEST_CASE(long_lived_run_resets_the_streak) {
  prefork::detail::restart_backoff backoff{make_config(1000ms, 100ms, 30000ms)};
  BOOST_TEST(backoff.on_exit(0ms).count() == 100);
  BOOST_TEST(backoff.on_exit(999ms).count() == 200);
  BOOST_TEST(backoff.on_exit(500ms).count() == 400);
  BOOST_TEST(backoff.streak() == 3u);
  // Exactly min_uptime counts as long-lived.
  BOOST_TEST(backoff.on_exit(1000ms).count() == 0);
  BOOST_TEST(backoff.streak() == 0u);
  BOOST_TEST(backoff.on_exit(1ms).count() == 100);  // starts over
  BOOST_TEST(backoff.on_exit(std::chrono::hours{24 * 90}).count() == 0);
  BOOST_TEST(backoff.streak() == 0u);
}

BOOST_AUTO_TEST_CASE(huge_streaks_stay_capped) {
  prefork::detail::restart_backoff backoff{make_config(1000ms, 100ms, 30000ms)};
  for (int i = 0; i < 200000; ++i) {
    const auto delay = backoff.on_exit(0ms);
    BOOST_TEST_REQUIRE(delay.count() > 0);
    BOOST_TEST_REQUIRE(delay <= 30000ms);
  }
  BOOST_TEST(backoff.on_exit(0ms) == 30000ms);
  BOOST_TEST(backoff.streak() == 200001u);
}

BOOST_AUTO_TEST_CASE(huge_values_do_not_overflow) {
  // A cap near the top of the representable range: doubling must not wrap negative.
  const milliseconds top{milliseconds::max().count() - 1};
  prefork::detail::restart_backoff backoff{make_config(1000ms, 3ms, top)};
  milliseconds previous{0};
  for (int i = 0; i < 100; ++i) {
    const auto delay = backoff.on_exit(0ms);
    BOOST_TEST_REQUIRE(delay >= previous);
    BOOST_TEST_REQUIRE(delay <= top);
    previous = delay;
  }
  BOOST_TEST(previous == top);
}

BOOST_AUTO_TEST_CASE(initial_equal_to_max) {
  prefork::detail::restart_backoff backoff{make_config(1000ms, 500ms, 500ms)};
  for (int i = 0; i < 5; ++i) BOOST_TEST(backoff.on_exit(0ms) == 500ms);
}

BOOST_AUTO_TEST_CASE(initial_above_max_is_capped) {
  prefork::detail::restart_backoff backoff{make_config(1000ms, 800ms, 500ms)};
  BOOST_TEST(backoff.on_exit(0ms) == 500ms);
  BOOST_TEST(backoff.on_exit(0ms) == 500ms);
}

BOOST_AUTO_TEST_CASE(zero_initial_means_no_delay_but_counts_the_streak) {
  prefork::detail::restart_backoff backoff{make_config(1000ms, 0ms, 500ms)};
  for (int i = 0; i < 100; ++i) BOOST_TEST_REQUIRE(backoff.on_exit(0ms) == 0ms);
  BOOST_TEST(backoff.streak() == 100u);
}

BOOST_AUTO_TEST_CASE(zero_min_uptime_never_backs_off) {
  prefork::detail::restart_backoff backoff{make_config(0ms, 100ms, 500ms)};
  BOOST_TEST(backoff.on_exit(0ms) == 0ms);
  BOOST_TEST(backoff.streak() == 0u);
}

BOOST_AUTO_TEST_CASE(negative_durations_count_as_zero) {
  prefork::detail::restart_backoff backoff{make_config(-5ms, -100ms, -1ms)};
  BOOST_TEST(backoff.on_exit(-1ms) == 0ms);  // below min_uptime 0: young
  BOOST_TEST(backoff.streak() == 1u);
  BOOST_TEST(backoff.on_exit(0ms) == 0ms);  // at min_uptime 0: long-lived
  BOOST_TEST(backoff.streak() == 0u);
}

BOOST_AUTO_TEST_SUITE_END()
