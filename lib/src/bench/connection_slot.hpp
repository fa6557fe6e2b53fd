// A connection slot of prefork-bench's load engine (everything one request needs: its
// bytes, its scanner, its list links) and the intrusive deadline lists that order slots.
#pragma once

#include "prefork/bench.hpp"

#include <chrono>
#include <cstddef>
#include <string_view>

namespace prefork::detail::bench {

using clock_type = std::chrono::steady_clock;
using time_point = clock_type::time_point;

struct connection_slot;
class deadline_list;

struct list_hook {
  connection_slot* previous = nullptr;
  connection_slot* next = nullptr;
  deadline_list* owner = nullptr;
};

enum class slot_phase { idle, connecting, writing, reading, paused };
enum class after_pause { next_request, retry_connect };

struct connection_slot {
  int fd = -1;
  slot_phase phase = slot_phase::idle;
  after_pause resume_with = after_pause::next_request;
  bool slow = false;
  bool watching_writable = false;
  bool readable_pending = false;  // EPOLLIN seen while still writing (edge-triggered)
  std::string_view request;
  std::size_t written = 0;
  time_point started;
  time_point deadline;   // of the request in flight
  time_point resume_at;  // of a pause
  list_hook in_flight_hook;
  list_hook pause_hook;
  http_response_scanner scanner;
};

// A FIFO of slots whose entries all wait the same delay, so appending keeps it sorted by
// deadline and the front is always the next to expire. Intrusive: O(1), no allocation.
class deadline_list {
 public:
  explicit deadline_list(list_hook connection_slot::*hook) noexcept : hook_(hook) {}

  connection_slot* front() const noexcept { return head_; }
  bool empty() const noexcept { return head_ == nullptr; }
  std::size_t size() const noexcept {
    std::size_t count = 0;
    for (auto* slot = head_; slot != nullptr; slot = (slot->*hook_).next) ++count;
    return count;
  }

  void push_back(connection_slot& slot) noexcept {
    auto& hook = slot.*hook_;
    if (hook.owner != nullptr) hook.owner->remove(slot);
    hook.owner = this;
    hook.previous = tail_;
    hook.next = nullptr;
    if (tail_ != nullptr)
      (tail_->*hook_).next = &slot;
    else
      head_ = &slot;
    tail_ = &slot;
  }

  void remove(connection_slot& slot) noexcept {
    auto& hook = slot.*hook_;
    if (hook.owner != this) return;
    if (hook.previous != nullptr)
      (hook.previous->*hook_).next = hook.next;
    else
      head_ = hook.next;
    if (hook.next != nullptr)
      (hook.next->*hook_).previous = hook.previous;
    else
      tail_ = hook.previous;
    hook = {};
  }

 private:
  list_hook connection_slot::*hook_;
  connection_slot* head_ = nullptr;
  connection_slot* tail_ = nullptr;
};

inline void remove_from_owner(connection_slot& slot, list_hook connection_slot::*hook) noexcept {
  if (auto* owner = (slot.*hook).owner) owner->remove(slot);
}

}  // namespace prefork::detail::bench
