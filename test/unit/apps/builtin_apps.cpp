// The list of apps preforkd registers: hello, testbed and echo, in that order.
#include "prefork/builtin_apps.hpp"

#include <boost/test/unit_test.hpp>

#include <vector>

BOOST_AUTO_TEST_SUITE(builtin_apps)

BOOST_AUTO_TEST_CASE(hello_testbed_and_echo_in_order) {
  const std::vector<prefork::app> apps = prefork::builtin_apps();
  BOOST_REQUIRE_EQUAL(apps.size(), 3u);
  BOOST_TEST(apps[0].name == "hello");
  BOOST_TEST(apps[1].name == "testbed");
  BOOST_TEST(apps[2].name == "echo");
  for (const prefork::app& a : apps) BOOST_TEST(static_cast<bool>(a.serve), a.name);
  BOOST_TEST(static_cast<bool>(apps[1].on_worker_start));  // the production warning
}

BOOST_AUTO_TEST_SUITE_END()
