#include "master/reload_sequencer.hpp"

#include <boost/test/unit_test.hpp>

namespace d = prefork::detail;
using namespace std::chrono_literals;
using sequencer = d::reload_sequencer;

namespace {
const sequencer::time_point t0{};
}

BOOST_AUTO_TEST_SUITE(reload_sequencer)

BOOST_AUTO_TEST_CASE(first_request_starts_then_switches_over_when_all_ready) {
  sequencer s;
  BOOST_TEST((s.request() == sequencer::request_action::start));
  s.started(2, 1, t0 + 10s);
  BOOST_TEST(s.active());
  BOOST_TEST((s.on_ready(2, 1, 3) == sequencer::outcome::none));
  BOOST_TEST((s.on_ready(2, 2, 3) == sequencer::outcome::none));
  BOOST_TEST((s.on_ready(1, 3, 3) == sequencer::outcome::none));  // old generation: ignored
  BOOST_TEST((s.on_ready(2, 3, 3) == sequencer::outcome::switch_over));
  BOOST_TEST(!s.finished());
  BOOST_TEST(!s.active());
}

BOOST_AUTO_TEST_CASE(requests_while_running_queue_one_and_never_stack) {
  sequencer s;
  BOOST_TEST((s.request() == sequencer::request_action::start));
  s.started(2, 1, t0 + 10s);
  BOOST_TEST((s.request() == sequencer::request_action::queued));
  BOOST_TEST((s.request() == sequencer::request_action::already_queued));
  BOOST_TEST((s.request() == sequencer::request_action::already_queued));
  BOOST_TEST(s.finished());  // the queued one starts now
  BOOST_TEST(!s.queued());
  BOOST_TEST((s.request() == sequencer::request_action::start));
  s.started(3, 2, t0 + 20s);
  BOOST_TEST(!s.finished());  // nothing queued any more
}

BOOST_AUTO_TEST_CASE(a_failed_new_worker_abandons_but_an_old_one_does_not) {
  sequencer s;
  (void)s.request();
  s.started(5, 4, t0 + 10s);
  BOOST_TEST((s.on_worker_failed(4) == sequencer::outcome::none));
  BOOST_TEST((s.on_worker_failed(5) == sequencer::outcome::abandon));
}

BOOST_AUTO_TEST_CASE(the_deadline_abandons) {
  sequencer s;
  (void)s.request();
  s.started(2, 1, t0 + 10s);
  BOOST_TEST((s.on_tick(t0 + 9s) == sequencer::outcome::none));
  BOOST_TEST((s.on_tick(t0 + 10s) == sequencer::outcome::abandon));
}

BOOST_AUTO_TEST_CASE(failing_to_start_releases_the_slot_and_runs_the_queued_one) {
  sequencer s;
  (void)s.request();
  BOOST_TEST((s.request() == sequencer::request_action::queued));
  BOOST_TEST(s.failed_to_start());
  BOOST_TEST(!s.active());
  BOOST_TEST((s.request() == sequencer::request_action::start));
  BOOST_TEST(!s.failed_to_start());
}

BOOST_AUTO_TEST_CASE(nothing_happens_when_idle) {
  sequencer s;
  BOOST_TEST((s.on_ready(1, 5, 1) == sequencer::outcome::none));
  BOOST_TEST((s.on_worker_failed(1) == sequencer::outcome::none));
  BOOST_TEST((s.on_tick(t0 + 100h) == sequencer::outcome::none));
  // A started-but-not-yet-numbered reload (between request and started) never ticks out.
  (void)s.request();
  BOOST_TEST((s.on_tick(t0 + 100h) == sequencer::outcome::none));
}

BOOST_AUTO_TEST_SUITE_END()
