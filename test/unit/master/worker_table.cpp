#include "master/worker_table.hpp"

#include <boost/test/unit_test.hpp>

#include <cstdint>
#include <limits>
#include <memory>
#include <vector>

namespace pd = prefork::detail;
using pd::worker_event;
using pd::worker_state;

namespace {

constexpr std::uint64_t no_descriptor_limit = std::numeric_limits<std::uint64_t>::max();

std::shared_ptr<const prefork::config> settings_with(int worker_connections) {
  auto settings = std::make_shared<prefork::config>();
  settings->worker_connections = worker_connections;
  return settings;
}

struct table_fixture {
  pd::worker_table table{no_descriptor_limit};
  std::shared_ptr<const prefork::config> settings = settings_with(2);
  int next_id = 1;

  pd::record_ptr add(std::uint64_t generation = 1) {
    auto record = std::make_shared<pd::worker_record>(next_id++, generation, settings);
    table.add(record);
    return record;
  }
  pd::record_ptr add_ready(std::uint64_t generation = 1) {
    auto record = add(generation);
    record->pid = 1000 + record->id;
    BOOST_TEST_REQUIRE(table.apply(*record, worker_event::ready_received));
    return record;
  }
  // The dispatcher's view of the record, found by identity (not by a remembered index).
  prefork::worker_load load_of(const pd::worker_record& record) const {
    for (std::size_t i = 0; i < table.records().size(); ++i)
      if (table.records()[i].get() == &record) return table.loads()[i];
    BOOST_FAIL("record not in the table");
    return {};
  }
};

prefork::detail::progress_counters closed_after(std::uint64_t received, std::uint64_t closed) {
  prefork::detail::progress_counters counters{};
  counters.received = received;
  counters.closed = closed;
  return counters;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(worker_table)

BOOST_FIXTURE_TEST_CASE(records_and_loads_stay_parallel_through_adds_and_removes, table_fixture) {
  auto a = add_ready();
  auto b = add_ready();
  auto c = add_ready();
  BOOST_TEST(table.records().size() == 3u);
  BOOST_TEST(table.loads().size() == 3u);

  table.remove(*b);
  BOOST_TEST(table.records().size() == 2u);
  BOOST_TEST(table.loads().size() == 2u);
  BOOST_TEST(table.records()[0] == a);
  BOOST_TEST(table.records()[1] == c);
  BOOST_TEST(table.find(b->id) == nullptr);
  BOOST_TEST(table.find(c->id) == c);

  // c moved to index 1: a change to c shows at index 1, and a's load is untouched.
  table.note_assigned(*c);
  table.note_assigned(*c);
  BOOST_TEST(table.loads()[1].open == 2u);
  BOOST_TEST(!table.loads()[1].accepting);
  BOOST_TEST(table.loads()[0].open == 0u);
  BOOST_TEST(table.loads()[0].accepting);

  // A record no longer in the table changes nothing in it.
  table.note_assigned(*b);
  BOOST_TEST(table.apply(*b, worker_event::drain));
  BOOST_TEST(table.loads()[0].accepting);
  table.remove(*b);  // twice: a no-op
  BOOST_TEST(table.records().size() == 2u);
}

BOOST_FIXTURE_TEST_CASE(only_a_ready_worker_takes_connections, table_fixture) {
  auto record = add();
  BOOST_TEST(pd::to_string(record->state()) == "starting");
  BOOST_TEST(!load_of(*record).accepting);
  BOOST_TEST(!table.any_accepting());

  BOOST_TEST(table.apply(*record, worker_event::ready_received));
  BOOST_TEST(load_of(*record).accepting);
  BOOST_TEST(table.any_accepting());

  BOOST_TEST(table.apply(*record, worker_event::pause));
  BOOST_TEST(!load_of(*record).accepting);
  BOOST_TEST(table.apply(*record, worker_event::resume));
  BOOST_TEST(load_of(*record).accepting);

  BOOST_TEST(table.apply(*record, worker_event::drain));
  BOOST_TEST(!load_of(*record).accepting);
  BOOST_TEST(table.apply(*record, worker_event::exited));
  BOOST_TEST(pd::to_string(record->state()) == "gone");
  BOOST_TEST(!load_of(*record).accepting);
}

BOOST_FIXTURE_TEST_CASE(an_event_invalid_in_the_state_is_refused_and_changes_nothing, table_fixture) {
  auto record = add_ready();
  BOOST_TEST(!table.apply(*record, worker_event::ready_received));
  BOOST_TEST(!table.apply(*record, worker_event::resume));
  BOOST_TEST(!table.apply(*record, worker_event::backoff_elapsed));
  BOOST_TEST(!table.apply(*record, worker_event::start_delayed));  // it has a process
  BOOST_TEST(pd::to_string(record->state()) == "ready");
  BOOST_TEST(load_of(*record).accepting);

  BOOST_TEST(table.apply(*record, worker_event::drain));
  BOOST_TEST(!table.apply(*record, worker_event::drain));  // draining stays draining
  BOOST_TEST(!table.apply(*record, worker_event::resume));
  BOOST_TEST(pd::to_string(record->state()) == "draining");
}

BOOST_FIXTURE_TEST_CASE(a_delayed_slot_waits_in_backoff_then_starts, table_fixture) {
  auto slot = add();
  BOOST_TEST(table.apply(*slot, worker_event::start_delayed));
  BOOST_TEST(pd::to_string(slot->state()) == "backoff");
  BOOST_TEST(!load_of(*slot).accepting);
  BOOST_TEST(table.count(1, worker_state::backoff) == 1);
  BOOST_TEST(table.apply(*slot, worker_event::backoff_elapsed));
  BOOST_TEST(pd::to_string(slot->state()) == "starting");
}

BOOST_FIXTURE_TEST_CASE(the_load_follows_descriptors_given_and_connections_closed, table_fixture) {
  auto record = add_ready();  // worker_connections = 2
  table.note_assigned(*record);
  BOOST_TEST(record->assigned() == 1u);
  BOOST_TEST(load_of(*record).open == 1u);
  BOOST_TEST(load_of(*record).accepting);
  table.note_assigned(*record);
  BOOST_TEST(record->open() == 2u);
  BOOST_TEST(!load_of(*record).accepting);  // full
  BOOST_TEST(!table.any_accepting());

  table.note_progress(*record, closed_after(2, 1));
  BOOST_TEST(record->progress().closed == 1u);
  BOOST_TEST(load_of(*record).open == 1u);
  BOOST_TEST(load_of(*record).accepting);  // room again
}

BOOST_AUTO_TEST_CASE(the_descriptor_capacity_caps_worker_connections) {
  pd::worker_table table(1);
  auto record = std::make_shared<pd::worker_record>(1, 1, settings_with(1000));
  table.add(record);
  BOOST_TEST(table.descriptor_capacity() == 1u);
  BOOST_TEST(table.apply(*record, worker_event::ready_received));
  BOOST_TEST(table.loads()[0].accepting);
  table.note_assigned(*record);
  BOOST_TEST(!table.loads()[0].accepting);
}

BOOST_FIXTURE_TEST_CASE(once_stopping_no_worker_takes_connections_again, table_fixture) {
  auto a = add_ready();
  auto b = add();
  table.stop_accepting();
  BOOST_TEST(!table.any_accepting());
  BOOST_TEST(table.apply(*b, worker_event::ready_received));
  table.note_progress(*a, closed_after(0, 0));
  BOOST_TEST(!table.any_accepting());
  auto c = add_ready();  // even a worker added afterwards
  BOOST_TEST(!load_of(*c).accepting);
}

BOOST_FIXTURE_TEST_CASE(scale_down_gives_up_backoff_then_starting_then_paused_then_the_newest_ready, table_fixture) {
  auto old_ready = add_ready();
  auto new_ready = add_ready();
  auto paused = add_ready();
  BOOST_TEST(table.apply(*paused, worker_event::pause));
  auto starting = add();
  auto backoff = add();
  BOOST_TEST(table.apply(*backoff, worker_event::start_delayed));
  auto other_generation = add(2);
  auto replaced = add();  // being replaced: does not count toward desired
  replaced->counts_toward_desired = false;

  BOOST_TEST(table.counted_toward_desired(1) == 5);
  std::vector<pd::record_ptr> order;
  while (auto victim = table.scale_down_victim(1)) {
    order.push_back(victim);
    victim->counts_toward_desired = false;  // what retiring does
  }
  const std::vector<pd::record_ptr> expected{backoff, starting, paused, new_ready, old_ready};
  BOOST_TEST((order == expected));
  BOOST_TEST(table.scale_down_victim(2) == other_generation);
}

BOOST_FIXTURE_TEST_CASE(counts_recycling_and_older_generations, table_fixture) {
  auto a = add_ready(1);
  auto b = add_ready(2);
  auto c = add(2);
  BOOST_TEST(table.count(2, worker_state::ready) == 1);
  BOOST_TEST(table.count(2, worker_state::starting) == 1);
  BOOST_TEST(table.count(worker_state::ready) == 2);
  BOOST_TEST(table.older_alive(2));
  BOOST_TEST(!table.older_alive(1));
  a->pid = 0;  // its exit was handled
  BOOST_TEST(!table.older_alive(2));

  BOOST_TEST(!table.recycling());
  c->replaces = b->id;
  BOOST_TEST(table.recycling());
  table.remove(*c);
  BOOST_TEST(!table.recycling());
  BOOST_TEST(!table.empty());
}

BOOST_FIXTURE_TEST_CASE(one_worker_is_due_for_recycling_at_a_time, table_fixture) {
  auto young = add_ready();
  auto old = add_ready();
  auto other_generation = add_ready(2);
  young->recycle_after = 100;
  old->recycle_after = 10;
  other_generation->recycle_after = 1;
  table.note_progress(*old, closed_after(0, 0));
  BOOST_TEST(table.due_for_recycling(1) == nullptr);  // nobody served enough

  prefork::detail::progress_counters served{};
  served.requests = 10;
  table.note_progress(*old, served);
  BOOST_TEST(table.due_for_recycling(1) == old);
  BOOST_TEST(table.due_for_recycling(2) == nullptr);  // served nothing yet

  // Its replacement is on its way: nobody else is due meanwhile.
  old->counts_toward_desired = false;
  auto replacement = add();
  replacement->replaces = old->id;
  served.requests = 100;
  table.note_progress(*young, served);
  BOOST_TEST(table.due_for_recycling(1) == nullptr);

  // A worker that never recycles (recycle_after 0), or is not ready, is never due.
  table.remove(*replacement);
  young->recycle_after = 0;
  BOOST_TEST(table.due_for_recycling(1) == nullptr);
  young->recycle_after = 100;
  BOOST_TEST(table.apply(*young, worker_event::pause));
  BOOST_TEST(table.due_for_recycling(1) == nullptr);
}

BOOST_FIXTURE_TEST_CASE(a_replacement_that_dies_before_ready_leaves_the_old_worker_on, table_fixture) {
  auto settings_with_max = std::make_shared<prefork::config>();
  settings_with_max->max_requests = 50;
  settings = settings_with_max;
  auto old = add_ready();
  prefork::detail::progress_counters served{};
  served.requests = 60;
  table.note_progress(*old, served);
  old->counts_toward_desired = false;  // being replaced
  auto replacement = add();
  replacement->replaces = old->id;

  table.replacement_failed(*replacement);
  BOOST_TEST(!replacement->counts_toward_desired);
  BOOST_TEST(old->counts_toward_desired);
  BOOST_TEST(old->recycle_after == 110u);  // tries again after another max_requests

  // A draining old worker is not revived.
  auto draining = add_ready();
  draining->counts_toward_desired = false;
  BOOST_TEST(table.apply(*draining, worker_event::drain));
  auto second = add();
  second->replaces = draining->id;
  table.replacement_failed(*second);
  BOOST_TEST(!draining->counts_toward_desired);
}

BOOST_AUTO_TEST_SUITE_END()
