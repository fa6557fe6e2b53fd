#include "channel/ack_ledger.hpp"

#include <algorithm>
#include <utility>

namespace prefork::detail {

namespace {
// Room for a burst of handoffs before the first growth.
constexpr std::size_t initial_capacity = 16;
}  // namespace

ack_ledger::ack_ledger(ack_ledger&& other) noexcept
    : slots_(std::exchange(other.slots_, {})),
      head_(std::exchange(other.head_, 0)),
      size_(std::exchange(other.size_, 0)),
      sent_held_(std::exchange(other.sent_held_, 0)),
      sent_total_(std::exchange(other.sent_total_, 0)),
      acknowledged_total_(std::exchange(other.acknowledged_total_, 0)) {}

ack_ledger& ack_ledger::operator=(ack_ledger&& other) noexcept {
  if (this != &other) {
    slots_ = std::exchange(other.slots_, {});
    head_ = std::exchange(other.head_, 0);
    size_ = std::exchange(other.size_, 0);
    sent_held_ = std::exchange(other.sent_held_, 0);
    sent_total_ = std::exchange(other.sent_total_, 0);
    acknowledged_total_ = std::exchange(other.acknowledged_total_, 0);
  }
  return *this;
}

void ack_ledger::push(handoff_entry entry) {
  if (size_ == slots_.size()) grow();
  slots_[slot(size_)] = entry;
  ++size_;
}

std::span<const handoff_entry> ack_ledger::unsent(std::size_t max) const noexcept {
  const std::size_t pending = unsent_count();
  if (pending == 0 || max == 0) return {};
  const std::size_t first = slot(sent_held_);
  // Stop at the end of the vector: the rest (if the ring wraps) starts at slot 0.
  const std::size_t length = std::min({pending, slots_.size() - first, max});
  return {slots_.data() + first, length};
}

void ack_ledger::mark_sent(std::size_t n) noexcept {
  n = std::min(n, unsent_count());
  sent_held_ += n;
  sent_total_ += n;
}

handoff_entry ack_ledger::pop_front() noexcept {
  const handoff_entry entry = slots_[head_];
  head_ = slot(1);
  --size_;
  return entry;
}

void ack_ledger::grow() {
  // Unwrap into the new vector so the oldest entry lands at slot 0.
  std::vector<handoff_entry> bigger(std::max(initial_capacity, slots_.size() * 2));
  for (std::size_t offset = 0; offset < size_; ++offset) bigger[offset] = slots_[slot(offset)];
  slots_.swap(bigger);
  head_ = 0;
}

}  // namespace prefork::detail
