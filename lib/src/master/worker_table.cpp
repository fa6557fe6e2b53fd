#include "master/worker_table.hpp"

#include <algorithm>
#include <array>
#include <limits>

namespace prefork::detail {

void worker_table::add(const record_ptr& record) {
  record->slot_ = records_.size();
  records_.push_back(record);
  loads_.emplace_back();
  refresh(*record);
}

void worker_table::remove(const worker_record& record) {
  const std::size_t slot = record.slot_;
  if (slot >= records_.size() || records_[slot].get() != &record) return;  // not in the table
  records_.erase(records_.begin() + static_cast<std::ptrdiff_t>(slot));
  loads_.erase(loads_.begin() + static_cast<std::ptrdiff_t>(slot));
  for (std::size_t i = slot; i < records_.size(); ++i) records_[i]->slot_ = i;
}

record_ptr worker_table::find(std::int64_t id) const {
  for (const auto& record : records_)
    if (record->id == id) return record;
  return nullptr;
}

bool worker_table::apply(worker_record& record, worker_event event) {
  auto next = next_state(record.state_, event);
  if (!next) return false;
  record.state_ = *next;
  refresh(record);
  return true;
}

void worker_table::note_assigned(worker_record& record) {
  ++record.assigned_;
  refresh(record);
}

void worker_table::note_progress(worker_record& record, const progress_counters& counters) {
  record.progress_ = counters;
  refresh(record);
}

void worker_table::stop_accepting() {
  stopping_ = true;
  for (const auto& record : records_) refresh(*record);
}

bool worker_table::any_accepting() const noexcept {
  return std::any_of(loads_.begin(), loads_.end(), [](const worker_load& load) { return load.accepting; });
}

int worker_table::count(std::uint64_t generation, worker_state state) const noexcept {
  return static_cast<int>(std::count_if(records_.begin(), records_.end(), [&](const record_ptr& r) {
    return r->generation == generation && r->state_ == state;
  }));
}

int worker_table::count(worker_state state) const noexcept {
  return static_cast<int>(
      std::count_if(records_.begin(), records_.end(), [&](const record_ptr& r) { return r->state_ == state; }));
}

int worker_table::counted_toward_desired(std::uint64_t generation) const noexcept {
  return static_cast<int>(std::count_if(records_.begin(), records_.end(), [&](const record_ptr& r) {
    return r->counts_toward_desired && r->generation == generation;
  }));
}

record_ptr worker_table::scale_down_victim(std::uint64_t generation) const {
  constexpr std::array order{worker_state::backoff, worker_state::starting, worker_state::paused, worker_state::ready};
  for (worker_state preferred : order)
    for (auto it = records_.rbegin(); it != records_.rend(); ++it)
      if ((*it)->counts_toward_desired && (*it)->generation == generation && (*it)->state_ == preferred) return *it;
  return nullptr;
}

bool worker_table::recycling() const noexcept {
  return std::any_of(records_.begin(), records_.end(), [](const record_ptr& r) { return r->replaces != 0; });
}

record_ptr worker_table::due_for_recycling(std::uint64_t generation) const {
  if (recycling()) return nullptr;
  for (const auto& r : records_) {
    if (r->state_ != worker_state::ready || !r->counts_toward_desired || r->generation != generation) continue;
    if (r->recycle_after == 0 || r->progress_.requests < r->recycle_after) continue;
    return r;
  }
  return nullptr;
}

void worker_table::replacement_failed(worker_record& replacement) {
  replacement.counts_toward_desired = false;
  const record_ptr old = find(replacement.replaces);
  if (!old || old->state_ == worker_state::draining) return;
  old->counts_toward_desired = true;
  old->recycle_after = old->progress_.requests + static_cast<std::uint64_t>(std::max(old->settings->max_requests, 0L));
}

bool worker_table::older_alive(std::uint64_t generation) const noexcept {
  return std::any_of(records_.begin(), records_.end(),
                     [&](const record_ptr& r) { return r->generation < generation && r->alive(); });
}

void worker_table::refresh(const worker_record& record) noexcept {
  // On the hot path (every dispatch and acknowledgement): the record knows its slot.
  if (record.slot_ >= records_.size() || records_[record.slot_].get() != &record) return;  // not in the table
  worker_load& load = loads_[record.slot_];
  load.open =
      static_cast<std::uint32_t>(std::min<std::uint64_t>(record.open(), std::numeric_limits<std::uint32_t>::max()));
  const auto capacity = std::min(static_cast<std::uint64_t>(record.settings->worker_connections), descriptor_capacity_);
  // A ready worker always has its channel: it is opened before the fork returns and closed
  // only once the worker is gone.
  load.accepting = !stopping_ && takes_new_connections(record.state_) && record.open() < capacity;
}

}  // namespace prefork::detail
