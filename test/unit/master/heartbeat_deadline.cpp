#include "master/heartbeat_deadline.hpp"

#include <boost/test/unit_test.hpp>

using namespace std::chrono_literals;
using prefork_deadline = prefork::detail::heartbeat_deadline;

namespace {
// A fixed, arbitrary origin: the tests never read the real clock.
const prefork_deadline::time_point t0 = prefork_deadline::time_point{} + 1000h;
}  // namespace

BOOST_AUTO_TEST_SUITE(heartbeat_deadline)

BOOST_AUTO_TEST_CASE(first_deadline_counts_from_start) {
  const prefork_deadline deadline{30s, t0};
  BOOST_TEST((deadline.deadline() == t0 + 30s));
  BOOST_TEST((deadline.last_seen() == t0));
  BOOST_TEST(!deadline.expired(t0));
  BOOST_TEST(!deadline.expired(t0 + 29s));
  BOOST_TEST(!deadline.expired(t0 + 30s - 1ns));
  BOOST_TEST(deadline.expired(t0 + 30s));  // silent for exactly `timeout`: expired
  BOOST_TEST(deadline.expired(t0 + 1h));
}

BOOST_AUTO_TEST_CASE(heartbeat_pushes_the_deadline) {
  prefork_deadline deadline{10s, t0};
  deadline.seen(t0 + 8s);
  BOOST_TEST((deadline.deadline() == t0 + 18s));
  BOOST_TEST(!deadline.expired(t0 + 12s));
  BOOST_TEST(deadline.expired(t0 + 18s));
  deadline.seen(t0 + 17s);
  BOOST_TEST(!deadline.expired(t0 + 26s));
  BOOST_TEST(deadline.expired(t0 + 27s));
}

BOOST_AUTO_TEST_CASE(silence) {
  prefork_deadline deadline{10s, t0};
  BOOST_TEST((deadline.silence(t0) == 0s));
  BOOST_TEST((deadline.silence(t0 + 4s) == 4s));
  deadline.seen(t0 + 3s);
  BOOST_TEST((deadline.silence(t0 + 4s) == 1s));
  BOOST_TEST((deadline.silence(t0 + 2s) == 0s));  // before the last sign of life: zero
}

BOOST_AUTO_TEST_CASE(older_heartbeat_does_not_move_the_deadline_back) {
  prefork_deadline deadline{10s, t0};
  deadline.seen(t0 + 5s);
  deadline.seen(t0 + 2s);  // e.g. a timestamp taken before a reordering
  BOOST_TEST((deadline.deadline() == t0 + 15s));
  BOOST_TEST((deadline.last_seen() == t0 + 5s));
  deadline.seen(t0 - 1h);  // older than the start
  BOOST_TEST((deadline.deadline() == t0 + 15s));
  deadline.seen(t0 + 5s);  // same time again: unchanged
  BOOST_TEST((deadline.deadline() == t0 + 15s));
}

BOOST_AUTO_TEST_CASE(zero_timeout_expires_at_once) {
  const prefork_deadline deadline{0s, t0};
  BOOST_TEST(deadline.expired(t0));
}

BOOST_AUTO_TEST_SUITE_END()
