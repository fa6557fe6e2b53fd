#include "prefork/dispatch.hpp"

#include <boost/test/unit_test.hpp>

#include <array>
#include <stdexcept>
#include <vector>

using prefork::worker_load;

namespace {

constexpr worker_load ready(std::uint32_t open) { return {true, open}; }
constexpr worker_load closed(std::uint32_t open = 0) { return {false, open}; }

// The chosen index, or -1 for none (std::optional is not printable by Boost.Test).
long index_of(std::optional<std::size_t> chosen) { return chosen ? static_cast<long>(*chosen) : -1; }

// How many times each index is chosen over `picks` calls with a fixed set of workers.
std::vector<int> histogram(prefork::dispatch_policy& policy, std::span<const worker_load> workers, int picks) {
  std::vector<int> counts(workers.size(), 0);
  for (int i = 0; i < picks; ++i) {
    const auto chosen = policy.pick(workers);
    BOOST_TEST_REQUIRE(chosen.has_value());
    BOOST_TEST_REQUIRE(*chosen < workers.size());
    ++counts[*chosen];
  }
  return counts;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(dispatch)

BOOST_AUTO_TEST_CASE(least_connections_fewest_wins) {
  prefork::least_connections_policy policy;
  const std::array workers{ready(5), ready(2), ready(7), ready(3)};
  for (int i = 0; i < 10; ++i) BOOST_TEST(index_of(policy.pick(workers)) == 1);
}

BOOST_AUTO_TEST_CASE(least_connections_fewest_wins_wherever_the_search_starts) {
  const std::array equal{ready(0), ready(0), ready(0), ready(0)};
  const std::array workers{ready(9), ready(9), ready(1), ready(9)};
  for (std::size_t start = 0; start < equal.size(); ++start) {
    prefork::least_connections_policy policy;
    // Equal workers rotate, so `start` picks put the next search at index `start`.
    for (std::size_t i = 0; i < start; ++i) BOOST_TEST_REQUIRE(index_of(policy.pick(equal)) == static_cast<long>(i));
    BOOST_TEST(index_of(policy.pick(workers)) == 2);
  }
}

BOOST_AUTO_TEST_CASE(least_connections_ties_alternate_fairly) {
  prefork::least_connections_policy policy;
  const std::array workers{ready(3), ready(3), ready(3), ready(3)};
  const auto counts = histogram(policy, workers, 400);
  for (int count : counts) BOOST_TEST(count == 100);
}

BOOST_AUTO_TEST_CASE(least_connections_ties_among_a_subset_alternate) {
  prefork::least_connections_policy policy;
  // Workers 0 and 3 tie at the minimum; 1 and 2 are busier or closed.
  const std::array workers{ready(1), ready(4), closed(0), ready(1)};
  const auto counts = histogram(policy, workers, 100);
  BOOST_TEST(counts[0] == 50);
  BOOST_TEST(counts[1] == 0);
  BOOST_TEST(counts[2] == 0);
  BOOST_TEST(counts[3] == 50);
  // And they strictly alternate.
  auto previous = policy.pick(workers);
  for (int i = 0; i < 10; ++i) {
    const auto chosen = policy.pick(workers);
    BOOST_TEST_REQUIRE(chosen.has_value());
    BOOST_TEST(*chosen != *previous);
    previous = chosen;
  }
}

BOOST_AUTO_TEST_CASE(least_connections_balances_when_counts_follow_picks) {
  prefork::least_connections_policy policy;
  std::array workers{ready(0), ready(0), ready(0)};
  for (int i = 0; i < 300; ++i) {
    const auto chosen = policy.pick(workers);
    BOOST_TEST_REQUIRE(chosen.has_value());
    ++workers[*chosen].open;
  }
  for (const auto& worker : workers) BOOST_TEST(worker.open == 100u);
}

BOOST_AUTO_TEST_CASE(least_connections_never_picks_a_non_accepting_worker) {
  prefork::least_connections_policy policy;
  // The idle worker is not accepting (starting, paused or draining): never chosen.
  const std::array workers{ready(10), closed(0), ready(10), closed(0)};
  const auto counts = histogram(policy, workers, 100);
  BOOST_TEST(counts[1] == 0);
  BOOST_TEST(counts[3] == 0);
  BOOST_TEST(counts[0] + counts[2] == 100);
}

BOOST_AUTO_TEST_CASE(least_connections_none_accepting) {
  prefork::least_connections_policy policy;
  const std::array workers{closed(0), closed(3)};
  BOOST_TEST(!policy.pick(workers).has_value());
}

BOOST_AUTO_TEST_CASE(least_connections_empty_span) {
  prefork::least_connections_policy policy;
  BOOST_TEST(!policy.pick({}).has_value());
  // Still usable afterwards.
  const std::array workers{ready(0)};
  BOOST_TEST(index_of(policy.pick(workers)) == 0);
}

BOOST_AUTO_TEST_CASE(least_connections_set_changes_size) {
  prefork::least_connections_policy policy;
  const std::array many{ready(0), ready(0), ready(0), ready(0), ready(0), ready(0)};
  for (int i = 0; i < 5; ++i) (void)policy.pick(many);  // start index now past 2
  const std::array few{ready(0), ready(0)};
  for (int i = 0; i < 10; ++i) {
    const auto chosen = policy.pick(few);
    BOOST_TEST_REQUIRE(chosen.has_value());
    BOOST_TEST(*chosen < few.size());
  }
  BOOST_TEST(!policy.pick({}).has_value());
  const std::array one{ready(0)};
  BOOST_TEST(index_of(policy.pick(one)) == 0);
  const auto counts = histogram(policy, many, 60);
  for (int count : counts) BOOST_TEST(count == 10);
}

BOOST_AUTO_TEST_CASE(round_robin_cycles_in_order_and_wraps) {
  prefork::round_robin_policy policy;
  const std::array workers{ready(9), ready(0), ready(5)};
  std::vector<std::size_t> order;
  for (int i = 0; i < 7; ++i) order.push_back(policy.pick(workers).value());
  const std::vector<std::size_t> expected{0, 1, 2, 0, 1, 2, 0};
  BOOST_TEST(order == expected, boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(round_robin_skips_non_accepting) {
  prefork::round_robin_policy policy;
  const std::array workers{closed(), ready(0), closed(), closed(), ready(0)};
  std::vector<std::size_t> order;
  for (int i = 0; i < 5; ++i) order.push_back(policy.pick(workers).value());
  const std::vector<std::size_t> expected{1, 4, 1, 4, 1};
  BOOST_TEST(order == expected, boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(round_robin_none_accepting_and_empty) {
  prefork::round_robin_policy policy;
  const std::array workers{closed(), closed()};
  BOOST_TEST(!policy.pick(workers).has_value());
  BOOST_TEST(!policy.pick({}).has_value());
}

BOOST_AUTO_TEST_CASE(round_robin_set_changes_size) {
  prefork::round_robin_policy policy;
  const std::array many{ready(0), ready(0), ready(0), ready(0), ready(0)};
  for (int i = 0; i < 4; ++i) (void)policy.pick(many);  // last pick: index 3
  const std::array few{ready(0), ready(0)};
  for (int i = 0; i < 10; ++i) {
    const auto chosen = policy.pick(few);
    BOOST_TEST_REQUIRE(chosen.has_value());
    BOOST_TEST(*chosen < few.size());
  }
  const std::array one_closed{closed()};
  BOOST_TEST(!policy.pick(one_closed).has_value());
  const auto counts = histogram(policy, many, 50);
  for (int count : counts) BOOST_TEST(count == 10);
}

BOOST_AUTO_TEST_CASE(make_dispatch_policy_builds_each_kind) {
  auto least = prefork::make_dispatch_policy(prefork::dispatch_kind::least_connections);
  BOOST_TEST(dynamic_cast<prefork::least_connections_policy*>(least.get()) != nullptr);
  auto round = prefork::make_dispatch_policy(prefork::dispatch_kind::round_robin);
  BOOST_TEST(dynamic_cast<prefork::round_robin_policy*>(round.get()) != nullptr);
}

BOOST_AUTO_TEST_CASE(make_dispatch_policy_rejects_unknown_kind) {
  BOOST_CHECK_THROW(prefork::make_dispatch_policy(static_cast<prefork::dispatch_kind>(42)), std::invalid_argument);
}

BOOST_AUTO_TEST_CASE(user_policy_plugs_in) {
  // A user policy: always the last accepting worker.
  class last_accepting final : public prefork::dispatch_policy {
   public:
    std::optional<std::size_t> pick(std::span<const worker_load> workers) noexcept override {
      for (std::size_t i = workers.size(); i > 0; --i)
        if (workers[i - 1].accepting) return i - 1;
      return std::nullopt;
    }
  };
  std::unique_ptr<prefork::dispatch_policy> policy = std::make_unique<last_accepting>();
  const std::array workers{ready(0), ready(0), closed()};
  BOOST_TEST(index_of(policy->pick(workers)) == 1);
}

BOOST_AUTO_TEST_SUITE_END()
