#include "master/worker_state.hpp"

#include <boost/test/unit_test.hpp>

#include <array>
#include <climits>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>

namespace pd = prefork::detail;
using pd::worker_event;
// No using-declaration for worker_state: the suite below is a namespace of that name.

namespace {

constexpr std::array all_states{pd::worker_state::starting, pd::worker_state::ready,   pd::worker_state::draining,
                                pd::worker_state::paused,   pd::worker_state::backoff, pd::worker_state::gone};
constexpr std::array all_events{worker_event::ready_received, worker_event::pause,  worker_event::resume,
                                worker_event::drain,          worker_event::exited, worker_event::backoff_elapsed,
                                worker_event::start_delayed};

// Every valid transition; any (state, event) pair not listed must be rejected.
const std::map<std::pair<pd::worker_state, worker_event>, pd::worker_state> valid{
    {{pd::worker_state::starting, worker_event::ready_received}, pd::worker_state::ready},
    {{pd::worker_state::starting, worker_event::drain}, pd::worker_state::draining},
    {{pd::worker_state::starting, worker_event::exited}, pd::worker_state::gone},
    {{pd::worker_state::ready, worker_event::pause}, pd::worker_state::paused},
    {{pd::worker_state::ready, worker_event::drain}, pd::worker_state::draining},
    {{pd::worker_state::ready, worker_event::exited}, pd::worker_state::gone},
    {{pd::worker_state::paused, worker_event::resume}, pd::worker_state::ready},
    {{pd::worker_state::paused, worker_event::drain}, pd::worker_state::draining},
    {{pd::worker_state::paused, worker_event::exited}, pd::worker_state::gone},
    {{pd::worker_state::draining, worker_event::exited}, pd::worker_state::gone},
    {{pd::worker_state::backoff, worker_event::backoff_elapsed}, pd::worker_state::starting},
    {{pd::worker_state::starting, worker_event::start_delayed}, pd::worker_state::backoff},
};

std::string name(pd::worker_state state, worker_event event) {
  return std::string(pd::to_string(state)) + " -(" + std::string(pd::to_string(event)) + ")->";
}

}  // namespace

BOOST_AUTO_TEST_SUITE(worker_state)

BOOST_AUTO_TEST_CASE(state_names_match_the_spec) {
  BOOST_TEST(pd::to_string(pd::worker_state::starting) == "starting");
  BOOST_TEST(pd::to_string(pd::worker_state::ready) == "ready");
  BOOST_TEST(pd::to_string(pd::worker_state::draining) == "draining");
  BOOST_TEST(pd::to_string(pd::worker_state::paused) == "paused");
  BOOST_TEST(pd::to_string(pd::worker_state::backoff) == "backoff");
  BOOST_TEST(pd::to_string(pd::worker_state::gone) == "gone");
  BOOST_TEST(pd::to_string(static_cast<pd::worker_state>(99)) == "unknown");
}

BOOST_AUTO_TEST_CASE(event_names) {
  std::set<std::string_view> names;
  for (auto event : all_events) names.insert(pd::to_string(event));
  BOOST_TEST(names.size() == all_events.size());  // distinct
  BOOST_TEST(names.count("unknown") == 0u);
  BOOST_TEST(pd::to_string(worker_event::ready_received) == "ready_received");
  BOOST_TEST(pd::to_string(worker_event::backoff_elapsed) == "backoff_elapsed");
  BOOST_TEST(pd::to_string(static_cast<worker_event>(99)) == "unknown");
}

BOOST_AUTO_TEST_CASE(every_transition_valid_and_invalid) {
  int accepted = 0;
  for (auto state : all_states) {
    for (auto event : all_events) {
      BOOST_TEST_CONTEXT(name(state, event)) {
        const auto next = pd::next_state(state, event);
        const auto expected = valid.find({state, event});
        if (expected == valid.end()) {
          BOOST_TEST(!next.has_value());
        } else {
          BOOST_TEST_REQUIRE(next.has_value());
          BOOST_TEST(pd::to_string(*next) == pd::to_string(expected->second));
          ++accepted;
        }
      }
    }
  }
  BOOST_TEST(accepted == static_cast<int>(valid.size()));
}

BOOST_AUTO_TEST_CASE(gone_accepts_no_event) {
  // gone -> backoff is the master's decision, not an event.
  for (auto event : all_events) BOOST_TEST(!pd::next_state(pd::worker_state::gone, event).has_value());
}

BOOST_AUTO_TEST_CASE(out_of_range_values_are_rejected) {
  BOOST_TEST(!pd::next_state(static_cast<pd::worker_state>(99), worker_event::exited).has_value());
  BOOST_TEST(!pd::next_state(pd::worker_state::ready, static_cast<worker_event>(99)).has_value());
}

BOOST_AUTO_TEST_CASE(a_whole_life) {
  auto state = pd::worker_state::backoff;
  for (auto event : {worker_event::backoff_elapsed, worker_event::ready_received, worker_event::pause,
                     worker_event::resume, worker_event::drain, worker_event::exited}) {
    const auto next = pd::next_state(state, event);
    BOOST_TEST_REQUIRE(next.has_value(), name(state, event));
    state = *next;
  }
  BOOST_TEST(pd::to_string(state) == "gone");
}

BOOST_AUTO_TEST_CASE(only_ready_takes_new_connections) {
  for (auto state : all_states)
    BOOST_TEST(pd::takes_new_connections(state) == (state == pd::worker_state::ready), pd::to_string(state));
}

BOOST_AUTO_TEST_CASE(recycle_threshold_disabled) {
  BOOST_TEST(pd::recycle_threshold(0, 0, 0) == 0u);
  BOOST_TEST(pd::recycle_threshold(0, 50, 12345) == 0u);  // jitter alone never recycles
  BOOST_TEST(pd::recycle_threshold(-1, 50, 12345) == 0u);
}

BOOST_AUTO_TEST_CASE(recycle_threshold_without_jitter) {
  BOOST_TEST(pd::recycle_threshold(1000, 0, 0) == 1000u);
  BOOST_TEST(pd::recycle_threshold(1000, 0, 987654321) == 1000u);
  BOOST_TEST(pd::recycle_threshold(1000, -7, 987654321) == 1000u);  // negative: no jitter
  BOOST_TEST(pd::recycle_threshold(1, 0, UINT64_MAX) == 1u);
}

BOOST_AUTO_TEST_CASE(recycle_threshold_with_jitter) {
  BOOST_TEST(pd::recycle_threshold(1000, 50, 0) == 1000u);
  BOOST_TEST(pd::recycle_threshold(1000, 50, 50) == 1050u);   // jitter is inclusive
  BOOST_TEST(pd::recycle_threshold(1000, 50, 51) == 1000u);   // wraps modulo jitter + 1
  BOOST_TEST(pd::recycle_threshold(1000, 50, 127) == 1025u);  // 127 % 51 == 25
  // Every value in [max, max + jitter] is reachable, none outside.
  std::set<std::uint64_t> seen;
  for (std::uint64_t random = 0; random < 1000; ++random) {
    const auto threshold = pd::recycle_threshold(100, 9, random);
    BOOST_TEST_REQUIRE(threshold >= 100u);
    BOOST_TEST_REQUIRE(threshold <= 109u);
    seen.insert(threshold);
  }
  BOOST_TEST(seen.size() == 10u);
}

BOOST_AUTO_TEST_CASE(recycle_threshold_extremes_do_not_overflow) {
  const auto top = static_cast<std::uint64_t>(LONG_MAX);
  BOOST_TEST(pd::recycle_threshold(LONG_MAX, LONG_MAX, UINT64_MAX) == top + UINT64_MAX % (top + 1));
  BOOST_TEST(pd::recycle_threshold(LONG_MAX, 0, UINT64_MAX) == top);
}

BOOST_AUTO_TEST_SUITE_END()
