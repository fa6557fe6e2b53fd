// Per worker: the descriptors the master handed to it that it has not acknowledged yet,
// oldest first; also the worker's outbox (the entries not yet sent). Pure bookkeeping:
// the ledger stores descriptor numbers and never closes, sends or receives anything.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace prefork::detail {

/// One accepted connection on its way to a worker: the master's copy of the descriptor
/// and the listener (index in the config's `bind` order) that accepted it.
struct handoff_entry {
  int fd = -1;
  std::uint32_t listener_index = 0;

  friend bool operator==(const handoff_entry&, const handoff_entry&) = default;
};

/// A ring buffer of handoff entries in three consecutive parts: acknowledged (gone),
/// sent but not acknowledged, not yet sent. Pushes are amortized O(1) and allocate only
/// when the ring grows (capacity doubles, never shrinks), so a warmed-up ledger does not
/// allocate on the hot path.
///
/// Entries are owned by the ledger until released (acknowledged) or taken (worker death);
/// the ledger never closes them, so its owner must drain it with take_all() before
/// destroying it while entries are held.
class ack_ledger {
 public:
  ack_ledger() = default;
  ack_ledger(const ack_ledger&) = delete;
  ack_ledger& operator=(const ack_ledger&) = delete;
  /// Moves every entry and counter; the moved-from ledger is empty with zero counters.
  ack_ledger(ack_ledger&& other) noexcept;
  /// Precondition: this ledger holds no entry (they would be dropped without a close).
  ack_ledger& operator=(ack_ledger&& other) noexcept;

  /// Queues a descriptor for this worker, after every entry already held.
  /// Throws std::bad_alloc only when the ring must grow and memory is exhausted.
  void push(handoff_entry entry);

  /// The queued entries not yet sent, oldest first, at most `max`. The view is contiguous,
  /// so it may be shorter than unsent_count() when the ring wraps: callers send it, call
  /// mark_sent(), and ask again. Valid until the next non-const call.
  std::span<const handoff_entry> unsent(std::size_t max) const noexcept;

  /// Marks the first `n` unsent entries as sent (clamped to unsent_count()).
  void mark_sent(std::size_t n) noexcept;

  /// The worker reports it has received `received_total` descriptors since it started
  /// (cumulative). Calls `release(handoff_entry)` for each newly acknowledged entry still
  /// held, oldest first (the caller closes the master's copy); each entry is removed before
  /// its call, so none is ever released twice. A total at or below acknowledged_total() is
  /// a stale or duplicate acknowledgement: ignored, returns true. A total above
  /// sent_total() is a protocol error: returns false and changes nothing.
  template <class F>
  [[nodiscard]] bool acknowledge(std::uint64_t received_total, F&& release);

  /// The worker died: hands every entry not acknowledged (sent first, then unsent; oldest
  /// first) to `take(handoff_entry)` and empties the ledger. Counters keep their totals; a
  /// later acknowledgement of a taken entry releases nothing.
  template <class F>
  void take_all(F&& take);

  /// Entries still held: sent but not acknowledged, plus not yet sent.
  std::size_t unacknowledged() const noexcept { return size_; }
  /// Entries held and not yet sent.
  std::size_t unsent_count() const noexcept { return size_ - sent_held_; }
  /// Entries marked sent since the ledger was created.
  std::uint64_t sent_total() const noexcept { return sent_total_; }
  /// The highest cumulative total the worker acknowledged.
  std::uint64_t acknowledged_total() const noexcept { return acknowledged_total_; }
  /// Slots of the ring (grows by doubling; for tests and diagnostics).
  std::size_t capacity() const noexcept { return slots_.size(); }

 private:
  // Slot of the entry `offset` places after the oldest held one (offset <= capacity).
  std::size_t slot(std::size_t offset) const noexcept {
    const std::size_t index = head_ + offset;
    return index >= slots_.size() ? index - slots_.size() : index;
  }
  // Removes and returns the oldest held entry (precondition: size_ > 0).
  handoff_entry pop_front() noexcept;
  void grow();

  std::vector<handoff_entry> slots_;  // the ring; its size is the capacity
  std::size_t head_ = 0;              // slot of the oldest held entry
  std::size_t size_ = 0;              // entries held
  std::size_t sent_held_ = 0;         // of which sent (the oldest ones)
  std::uint64_t sent_total_ = 0;
  std::uint64_t acknowledged_total_ = 0;
};

template <class F>
bool ack_ledger::acknowledge(std::uint64_t received_total, F&& release) {
  if (received_total > sent_total_) return false;
  if (received_total <= acknowledged_total_) return true;
  // The held sent entries are the last sent_held_ ones sent, numbered
  // [sent_total_ - sent_held_, sent_total_); lower numbers were released or taken.
  const std::uint64_t first_held = sent_total_ - sent_held_;
  std::uint64_t to_release = received_total > first_held ? received_total - first_held : 0;
  acknowledged_total_ = received_total;
  for (; to_release != 0; --to_release) {
    --sent_held_;
    release(pop_front());
  }
  return true;
}

template <class F>
void ack_ledger::take_all(F&& take) {
  while (size_ != 0) {
    if (sent_held_ != 0) --sent_held_;
    take(pop_front());
  }
  head_ = 0;
}

}  // namespace prefork::detail
