// The master's table of workers: who they are, and the view of them the dispatcher
// chooses from. Every state change goes through the worker state machine
// (worker_state.hpp), and every change that moves a worker's load (its state, a
// descriptor given to it, a progress report, the master stopping) goes through here, so the
// loads the dispatcher reads are never stale. Plain data, no I/O: unit-tested without fork.
#pragma once

#include "master/worker_record.hpp"
#include "master/worker_state.hpp"
#include "prefork/dispatch.hpp"

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace prefork::detail {

class worker_table {
 public:
  /// `descriptor_capacity`: connections a worker can hold under the descriptor limit it
  /// inherits (fd_limits.hpp); a worker takes no more than that, whatever
  /// worker_connections says.
  explicit worker_table(std::uint64_t descriptor_capacity) noexcept : descriptor_capacity_(descriptor_capacity) {}

  // --- membership ---------------------------------------------------------------------
  /// Adds a record (a new slot: `starting`, no process yet).
  void add(const record_ptr& record);
  /// Removes a record; the others keep their order.
  void remove(const worker_record& record);
  /// The record with this id, or null.
  record_ptr find(std::int64_t id) const;
  /// Every record, oldest first.
  const std::vector<record_ptr>& records() const noexcept { return records_; }
  /// The dispatcher's view, parallel to records(): loads()[i] is records()[i]'s.
  std::span<const worker_load> loads() const noexcept { return loads_; }
  bool empty() const noexcept { return records_.empty(); }
  std::uint64_t descriptor_capacity() const noexcept { return descriptor_capacity_; }

  // --- transitions ----------------------------------------------------------------------
  /// Applies `event` to the record's state through next_state(); returns false (state
  /// unchanged) when the event is invalid in its state.
  bool apply(worker_record& record, worker_event event);
  /// One more descriptor given to the worker.
  void note_assigned(worker_record& record);
  /// The worker's new cumulative report (acknowledged, closed, requests).
  void note_progress(worker_record& record, const progress_counters& counters);
  /// The master stops: no worker takes new connections any more.
  void stop_accepting();

  // --- questions --------------------------------------------------------------------------
  /// Whether any worker takes new connections now.
  bool any_accepting() const noexcept;
  /// Records of `generation` in `state`.
  int count(std::uint64_t generation, worker_state state) const noexcept;
  /// Records in `state`, any generation.
  int count(worker_state state) const noexcept;
  /// Records of `generation` that count toward the desired number of workers.
  int counted_toward_desired(std::uint64_t generation) const noexcept;
  /// The record to give up when `generation` has more workers than desired: a slot in
  /// backoff first, then a starting one, a paused one, the newest ready one; null if none.
  record_ptr scale_down_victim(std::uint64_t generation) const;
  /// Whether a recycling replacement is on its way (one worker recycles at a time).
  bool recycling() const noexcept;
  /// The worker of `generation` due for recycling (ready, counting toward the desired
  /// number, served its recycle_after requests), oldest first; null when none is, or while
  /// another one recycles.
  record_ptr due_for_recycling(std::uint64_t generation) const;
  /// A recycling replacement died before it was ready: it no longer counts, and the worker
  /// it was to replace (unless already draining) counts again and tries recycling only
  /// after another max_requests (no fork loop).
  void replacement_failed(worker_record& replacement);
  /// Whether a worker older than `generation` is still alive.
  bool older_alive(std::uint64_t generation) const noexcept;

 private:
  void refresh(const worker_record& record) noexcept;

  std::vector<record_ptr> records_;
  std::vector<worker_load> loads_;  // parallel to records_
  std::uint64_t descriptor_capacity_;
  bool stopping_ = false;
};

}  // namespace prefork::detail
