#include "master/stop_sequencer.hpp"

#include <boost/test/unit_test.hpp>

#include <chrono>

namespace pd = prefork::detail;
using action = pd::stop_sequencer::action;
using pd::stop_kind;
using namespace std::chrono_literals;

BOOST_AUTO_TEST_SUITE(stop_sequencer)

BOOST_AUTO_TEST_CASE(the_first_request_stops_in_its_own_way) {
  pd::stop_sequencer graceful;
  BOOST_TEST(!graceful.stopping());
  BOOST_TEST((graceful.request(stop_kind::graceful) == action::begin));
  BOOST_TEST(graceful.stopping());
  BOOST_TEST((graceful.kind() == stop_kind::graceful));
  BOOST_TEST(graceful.deadline(30s).count() == 30000);

  pd::stop_sequencer fast;
  BOOST_TEST((fast.request(stop_kind::fast) == action::begin));
  BOOST_TEST((fast.kind() == stop_kind::fast));
  BOOST_TEST(fast.deadline(30s).count() == 1000);  // a fast stop kills after 1 s
}

BOOST_AUTO_TEST_CASE(a_fast_request_escalates_a_graceful_stop_once) {
  pd::stop_sequencer stop;
  BOOST_TEST((stop.request(stop_kind::graceful) == action::begin));
  BOOST_TEST((stop.request(stop_kind::graceful) == action::ignore));  // a second TERM
  BOOST_TEST((stop.request(stop_kind::fast) == action::escalate));
  BOOST_TEST((stop.kind() == stop_kind::fast));
  BOOST_TEST(stop.deadline(30s).count() == 1000);
  BOOST_TEST((stop.request(stop_kind::fast) == action::ignore));      // a second QUIT
  BOOST_TEST((stop.request(stop_kind::graceful) == action::ignore));  // never slower again
  BOOST_TEST((stop.kind() == stop_kind::fast));
}

BOOST_AUTO_TEST_SUITE_END()
