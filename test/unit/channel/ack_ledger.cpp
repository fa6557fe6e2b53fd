#include "channel/ack_ledger.hpp"

#include <boost/test/unit_test.hpp>

#include <cstdint>
#include <functional>
#include <random>
#include <set>
#include <vector>

// Not a using-declaration: the suite below is a namespace named ack_ledger.
namespace pd = prefork::detail;
using pd::handoff_entry;

namespace {

std::vector<int> fds_of(const std::vector<handoff_entry>& entries) {
  std::vector<int> fds;
  for (const auto& entry : entries) fds.push_back(entry.fd);
  return fds;
}

std::vector<int> range(int first, int last) {  // [first, last)
  std::vector<int> fds;
  for (int fd = first; fd < last; ++fd) fds.push_back(fd);
  return fds;
}

// Sends up to `n` unsent entries the way the driver does (looping over contiguous views),
// returning what was "sent".
std::vector<handoff_entry> send(pd::ack_ledger& ledger, std::size_t n) {
  std::vector<handoff_entry> sent;
  while (sent.size() < n) {
    const auto view = ledger.unsent(n - sent.size());
    if (view.empty()) break;
    sent.insert(sent.end(), view.begin(), view.end());
    ledger.mark_sent(view.size());
  }
  return sent;
}

void push_range(pd::ack_ledger& ledger, int first, int last) {
  for (int fd = first; fd < last; ++fd) ledger.push({fd, static_cast<std::uint32_t>(fd % 3)});
}

struct recorder {
  std::vector<handoff_entry> entries;
  void operator()(handoff_entry entry) { entries.push_back(entry); }
};

}  // namespace

BOOST_AUTO_TEST_SUITE(ack_ledger)

BOOST_AUTO_TEST_CASE(empty_ledger) {
  pd::ack_ledger ledger;
  BOOST_TEST(ledger.unacknowledged() == 0u);
  BOOST_TEST(ledger.unsent_count() == 0u);
  BOOST_TEST(ledger.unsent(10).empty());
  BOOST_TEST(ledger.sent_total() == 0u);
  BOOST_TEST(ledger.acknowledged_total() == 0u);
  BOOST_TEST(ledger.capacity() == 0u);  // no allocation until the first push
  recorder released;
  BOOST_TEST(ledger.acknowledge(0, std::ref(released)));
  BOOST_TEST(!ledger.acknowledge(1, std::ref(released)));
  ledger.mark_sent(5);  // nothing to mark
  BOOST_TEST(ledger.sent_total() == 0u);
  ledger.take_all(std::ref(released));
  BOOST_TEST(released.entries.empty());
}

BOOST_AUTO_TEST_CASE(push_send_acknowledge_in_batches) {
  pd::ack_ledger ledger;
  push_range(ledger, 100, 110);
  BOOST_TEST(ledger.unacknowledged() == 10u);
  BOOST_TEST(ledger.unsent_count() == 10u);

  const auto first = send(ledger, 4);
  BOOST_TEST(fds_of(first) == range(100, 104), boost::test_tools::per_element());
  BOOST_TEST(first[1].listener_index == 101u % 3);
  BOOST_TEST(ledger.sent_total() == 4u);
  BOOST_TEST(ledger.unsent_count() == 6u);
  BOOST_TEST(ledger.unacknowledged() == 10u);

  recorder released;
  BOOST_TEST(ledger.acknowledge(3, std::ref(released)));
  BOOST_TEST(fds_of(released.entries) == range(100, 103), boost::test_tools::per_element());
  BOOST_TEST(ledger.acknowledged_total() == 3u);
  BOOST_TEST(ledger.unacknowledged() == 7u);
  BOOST_TEST(ledger.unsent_count() == 6u);

  const auto second = send(ledger, 100);
  BOOST_TEST(fds_of(second) == range(104, 110), boost::test_tools::per_element());
  BOOST_TEST(ledger.unsent_count() == 0u);
  BOOST_TEST(ledger.unsent(5).empty());

  BOOST_TEST(ledger.acknowledge(10, std::ref(released)));
  BOOST_TEST(fds_of(released.entries) == range(100, 110), boost::test_tools::per_element());
  BOOST_TEST(ledger.unacknowledged() == 0u);
  BOOST_TEST(ledger.sent_total() == 10u);
  BOOST_TEST(ledger.acknowledged_total() == 10u);
}

BOOST_AUTO_TEST_CASE(unsent_respects_max) {
  pd::ack_ledger ledger;
  push_range(ledger, 0, 5);
  BOOST_TEST(ledger.unsent(0).empty());
  BOOST_TEST(ledger.unsent(2).size() == 2u);
  BOOST_TEST(ledger.unsent(99).size() == 5u);
  BOOST_TEST(ledger.unsent_count() == 5u);  // looking does not send
}

BOOST_AUTO_TEST_CASE(mark_sent_is_clamped_to_unsent) {
  pd::ack_ledger ledger;
  push_range(ledger, 0, 3);
  ledger.mark_sent(2);
  ledger.mark_sent(10);
  BOOST_TEST(ledger.sent_total() == 3u);
  BOOST_TEST(ledger.unsent_count() == 0u);
  BOOST_TEST(ledger.unacknowledged() == 3u);
}

BOOST_AUTO_TEST_CASE(cumulative_and_duplicate_acknowledgements) {
  pd::ack_ledger ledger;
  push_range(ledger, 0, 8);
  send(ledger, 8);
  recorder released;
  BOOST_TEST(ledger.acknowledge(2, std::ref(released)));
  BOOST_TEST(ledger.acknowledge(2, std::ref(released)));  // duplicate
  BOOST_TEST(released.entries.size() == 2u);
  BOOST_TEST(ledger.acknowledge(5, std::ref(released)));  // covers 3 more at once
  BOOST_TEST(released.entries.size() == 5u);
  BOOST_TEST(ledger.acknowledge(4, std::ref(released)));  // stale (reordered): ignored
  BOOST_TEST(ledger.acknowledge(0, std::ref(released)));
  BOOST_TEST(released.entries.size() == 5u);
  BOOST_TEST(ledger.acknowledged_total() == 5u);
  BOOST_TEST(ledger.unacknowledged() == 3u);
  BOOST_TEST(ledger.acknowledge(8, std::ref(released)));
  BOOST_TEST(fds_of(released.entries) == range(0, 8), boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(acknowledgement_beyond_sent_is_rejected_and_changes_nothing) {
  pd::ack_ledger ledger;
  push_range(ledger, 0, 6);
  send(ledger, 3);
  recorder released;
  BOOST_TEST(ledger.acknowledge(1, std::ref(released)));
  // 4 > 3 sent: the worker cannot have received an unsent descriptor.
  BOOST_TEST(!ledger.acknowledge(4, std::ref(released)));
  BOOST_TEST(!ledger.acknowledge(UINT64_MAX, std::ref(released)));
  BOOST_TEST(released.entries.size() == 1u);
  BOOST_TEST(ledger.acknowledged_total() == 1u);
  BOOST_TEST(ledger.sent_total() == 3u);
  BOOST_TEST(ledger.unacknowledged() == 5u);
  BOOST_TEST(ledger.unsent_count() == 3u);
  // Still consistent afterwards.
  BOOST_TEST(ledger.acknowledge(3, std::ref(released)));
  BOOST_TEST(fds_of(released.entries) == range(0, 3), boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(ring_wraps_and_unsent_view_is_split) {
  pd::ack_ledger ledger;
  push_range(ledger, 0, 16);
  const std::size_t capacity = ledger.capacity();
  BOOST_TEST_REQUIRE(capacity == 16u);
  ledger.mark_sent(12);
  recorder released;
  BOOST_TEST(ledger.acknowledge(12, std::ref(released)));
  // 4 unsent at the end of the vector; 8 more wrap to its start.
  push_range(ledger, 16, 24);
  BOOST_TEST(ledger.capacity() == capacity);  // no growth: 12 entries in 16 slots
  BOOST_TEST(ledger.unsent_count() == 12u);
  const auto first_view = ledger.unsent(100);
  BOOST_TEST(first_view.size() == 4u);  // contiguous up to the end of the vector
  BOOST_TEST(first_view.front().fd == 12);
  ledger.mark_sent(first_view.size());
  const auto second_view = ledger.unsent(100);
  BOOST_TEST(second_view.size() == 8u);
  BOOST_TEST(second_view.front().fd == 16);
  BOOST_TEST(second_view.back().fd == 23);
  ledger.mark_sent(second_view.size());
  BOOST_TEST(ledger.acknowledge(24, std::ref(released)));
  BOOST_TEST(fds_of(released.entries) == range(0, 24), boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(growth_while_wrapped_keeps_order) {
  pd::ack_ledger ledger;
  push_range(ledger, 0, 16);
  ledger.mark_sent(10);
  recorder released;
  BOOST_TEST(ledger.acknowledge(6, std::ref(released)));  // 4 sent + 6 unsent held
  push_range(ledger, 16, 22);                             // fills the ring, wrapped
  BOOST_TEST(ledger.capacity() == 16u);
  BOOST_TEST(ledger.unacknowledged() == 16u);
  push_range(ledger, 22, 40);  // grows while wrapped
  BOOST_TEST(ledger.capacity() > 16u);
  BOOST_TEST(ledger.unacknowledged() == 34u);
  BOOST_TEST(ledger.unsent_count() == 30u);
  BOOST_TEST(ledger.sent_total() == 10u);
  const auto sent = send(ledger, 100);
  BOOST_TEST(fds_of(sent) == range(10, 40), boost::test_tools::per_element());
  BOOST_TEST(ledger.acknowledge(40, std::ref(released)));
  BOOST_TEST(fds_of(released.entries) == range(0, 40), boost::test_tools::per_element());
  BOOST_TEST(ledger.unacknowledged() == 0u);
}

BOOST_AUTO_TEST_CASE(take_all_after_partial_acknowledgements) {
  pd::ack_ledger ledger;
  push_range(ledger, 0, 20);
  send(ledger, 12);
  recorder released;
  BOOST_TEST(ledger.acknowledge(5, std::ref(released)));
  recorder taken;
  ledger.take_all(std::ref(taken));
  // Sent-but-unacknowledged 5..11, then unsent 12..19, oldest first, with their listeners.
  BOOST_TEST(fds_of(taken.entries) == range(5, 20), boost::test_tools::per_element());
  for (const auto& entry : taken.entries) BOOST_TEST(entry.listener_index == static_cast<std::uint32_t>(entry.fd % 3));
  BOOST_TEST(ledger.unacknowledged() == 0u);
  BOOST_TEST(ledger.unsent_count() == 0u);
  BOOST_TEST(ledger.unsent(10).empty());
  // Counters keep their totals.
  BOOST_TEST(ledger.sent_total() == 12u);
  BOOST_TEST(ledger.acknowledged_total() == 5u);
  // A late acknowledgement of taken entries releases nothing; beyond sent is still rejected.
  BOOST_TEST(ledger.acknowledge(12, std::ref(released)));
  BOOST_TEST(released.entries.size() == 5u);
  BOOST_TEST(!ledger.acknowledge(13, std::ref(released)));
  // Taking again hands out nothing.
  recorder again;
  ledger.take_all(std::ref(again));
  BOOST_TEST(again.entries.empty());
}

BOOST_AUTO_TEST_CASE(take_all_of_a_wrapped_ring) {
  pd::ack_ledger ledger;
  push_range(ledger, 0, 16);
  send(ledger, 14);
  recorder released;
  BOOST_TEST(ledger.acknowledge(14, std::ref(released)));
  push_range(ledger, 16, 26);  // wrapped
  send(ledger, 3);
  recorder taken;
  ledger.take_all(std::ref(taken));
  BOOST_TEST(fds_of(taken.entries) == range(14, 26), boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(usable_after_take_all) {
  pd::ack_ledger ledger;
  push_range(ledger, 0, 4);
  send(ledger, 4);
  recorder sink;
  ledger.take_all(std::ref(sink));
  push_range(ledger, 4, 8);
  const auto sent = send(ledger, 10);
  BOOST_TEST(fds_of(sent) == range(4, 8), boost::test_tools::per_element());
  BOOST_TEST(ledger.sent_total() == 8u);
  recorder released;
  // Numbers 0..3 were taken, 4..7 are the new ones.
  BOOST_TEST(ledger.acknowledge(6, std::ref(released)));
  BOOST_TEST(fds_of(released.entries) == range(4, 6), boost::test_tools::per_element());
  BOOST_TEST(ledger.acknowledge(8, std::ref(released)));
  BOOST_TEST(fds_of(released.entries) == range(4, 8), boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(no_growth_once_warmed_up) {
  pd::ack_ledger ledger;
  push_range(ledger, 0, 10);
  const std::size_t capacity = ledger.capacity();
  send(ledger, 10);
  recorder released;
  BOOST_TEST(ledger.acknowledge(10, std::ref(released)));
  // Many cycles through a ring that keeps wrapping: never reallocates.
  int next = 10;
  for (int cycle = 0; cycle < 1000; ++cycle) {
    push_range(ledger, next, next + 10);
    next += 10;
    send(ledger, 10);
    BOOST_TEST_REQUIRE(ledger.acknowledge(ledger.sent_total(), std::ref(released)));
  }
  BOOST_TEST(ledger.capacity() == capacity);
  BOOST_TEST(released.entries.size() == static_cast<std::size_t>(next));
}

BOOST_AUTO_TEST_CASE(every_entry_leaves_exactly_once) {
  // Random interleaving of pushes, sends, acknowledgements (some stale, some too high),
  // and deaths: every pushed descriptor comes out exactly once, in push order.
  std::mt19937 random{12345};
  pd::ack_ledger ledger;
  std::vector<int> out;
  int next = 0;
  auto collect = [&out](handoff_entry entry) { out.push_back(entry.fd); };
  for (int step = 0; step < 20000; ++step) {
    switch (random() % 6) {
      case 0:
      case 1: {
        const int count = static_cast<int>(random() % 5);
        push_range(ledger, next, next + count);
        next += count;
        break;
      }
      case 2: send(ledger, random() % 7); break;
      case 3: {
        const std::uint64_t sent = ledger.sent_total();
        const std::uint64_t acked = ledger.acknowledged_total();
        const std::uint64_t total = acked + random() % (sent - acked + 2);  // may exceed sent
        const bool accepted = ledger.acknowledge(total, collect);
        BOOST_TEST_REQUIRE(accepted == (total <= sent));
        break;
      }
      case 4:  // stale: ignored
        BOOST_TEST_REQUIRE(ledger.acknowledge(ledger.acknowledged_total() / 2, collect));
        break;
      case 5:
        if (random() % 50 == 0) ledger.take_all(collect);
        break;
    }
    BOOST_TEST_REQUIRE(out.size() + ledger.unacknowledged() == static_cast<std::size_t>(next));
  }
  ledger.take_all(collect);
  BOOST_TEST(out == range(0, next), boost::test_tools::per_element());
  BOOST_TEST(std::set<int>(out.begin(), out.end()).size() == out.size());
}

BOOST_AUTO_TEST_CASE(move_transfers_entries) {
  pd::ack_ledger source;
  push_range(source, 0, 5);
  send(source, 2);
  pd::ack_ledger target{std::move(source)};
  BOOST_TEST(target.unacknowledged() == 5u);
  BOOST_TEST(target.sent_total() == 2u);
  BOOST_TEST(source.unacknowledged() == 0u);  // NOLINT(bugprone-use-after-move)
  BOOST_TEST(source.sent_total() == 0u);
  pd::ack_ledger assigned;
  assigned = std::move(target);
  recorder taken;
  assigned.take_all(std::ref(taken));
  BOOST_TEST(fds_of(taken.entries) == range(0, 5), boost::test_tools::per_element());
  BOOST_TEST(target.unacknowledged() == 0u);  // NOLINT(bugprone-use-after-move)
}

BOOST_AUTO_TEST_SUITE_END()
