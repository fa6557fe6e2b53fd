// The master's hot path: accept until EAGAIN, choose a worker, batch descriptors per
// sendmsg, and read what workers report (acknowledgements, control messages, handbacks).
#include "master_internal.hpp"

#include "prefork/log.hpp"

#include <algorithm>
#include <array>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <sys/socket.h>
#include <unistd.h>

namespace prefork::detail {

bool master::any_accepting() const { return workers_.any_accepting(); }

bool master::accept_ready(std::size_t listener_index) {
  auto& slot = *listeners_[listener_index];
  bool out_of_descriptors = false;
  auto woke = steady_clock::now();
  auto dispatched_before = stats_.dispatched;
  while (any_accepting()) {
    int fd = ::accept4(slot.info.fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
        ++stats_.accept_pauses;
        // A master out of descriptors pauses every 100 ms: one line a second says so.
        if (auto now = steady_clock::now(); now - last_pause_logged_ >= std::chrono::seconds(1)) {
          last_pause_logged_ = now;
          log_warning(
              "accept paused: out of descriptors",
              {{"address", slot.info.address}, {"error", std::strerror(errno)}, {"pauses", stats_.accept_pauses}});
        }
        out_of_descriptors = true;
        break;
      }
      log_error("accept failed", {{"address", slot.info.address}, {"error", std::strerror(errno)}});
      break;
    }
    ++stats_.accepted;
    dispatch({fd, static_cast<std::uint32_t>(listener_index)});
  }
  flush_dirty();
  // Handoff latency: from this wake-up to the batch's sendmsg, once per connection sent.
  if (auto sent = stats_.dispatched - dispatched_before; sent > 0) {
    auto elapsed = steady_clock::now() - woke;
    for (std::uint64_t i = 0; i < sent; ++i) handoff_latency_.record(elapsed);
  }
  return out_of_descriptors;
}

void master::accept_backlog(listener_slot& slot, std::size_t index) {
  for (;;) {
    int fd = ::accept4(slot.info.fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      break;
    }
    ++stats_.accepted;
    dispatch({fd, static_cast<std::uint32_t>(index)});
  }
  flush_dirty();
}

void master::dispatch(handoff_entry entry) {
  const std::vector<record_ptr>& records = workers_.records();
  std::optional<std::size_t> choice = policy_->pick(workers_.loads());
  if (!choice && stop_.stopping()) {
    // Stopping: every worker drains, but a draining worker still serves what it gets.
    std::uint64_t fewest = UINT64_MAX;
    for (std::size_t i = 0; i < records.size(); ++i)
      if (records[i]->channel && records[i]->open() < fewest) {
        fewest = records[i]->open();
        choice = i;
      }
  }
  if (!choice) {
    unassigned_.push_back(entry);
    return;
  }
  worker_record& record = *records[*choice];
  record.ledger.push(entry);
  workers_.note_assigned(record);
  if (!record.dirty) {
    record.dirty = true;
    dirty_.push_back(&record);
  }
}

void master::flush_dirty() {
  for (std::size_t i = 0; i < dirty_.size(); ++i) {
    dirty_[i]->dirty = false;
    flush(*dirty_[i]);
  }
  dirty_.clear();
}

void master::flush(worker_record& record) {
  if (!record.channel) return;
  while (record.ledger.unsent_count() > 0) {
    std::span<const handoff_entry> batch = record.ledger.unsent(max_fds_per_frame);
    std::array<std::uint32_t, max_fds_per_frame> indexes;
    std::array<int, max_fds_per_frame> fds;
    for (std::size_t i = 0; i < batch.size(); ++i) {
      indexes[i] = batch[i].listener_index;
      fds[i] = batch[i].fd;
    }
    auto ec = send_frame(record.channel->native_handle(), frame_type::handoff,
                         std::as_bytes(std::span(indexes.data(), batch.size())), std::span(fds.data(), batch.size()));
    if (ec == asio::error::would_block) {
      // The worker's channel is full: send the rest once it drains.
      if (record.write_wait_armed) return;
      record.write_wait_armed = true;
      record_ptr owner = workers_.find(record.id);
      std::weak_ptr<worker_record> weak = owner;
      record.channel->async_wait(asio::posix::stream_descriptor::wait_write,
                                 [this, weak](boost::system::error_code wait_error) {
                                   auto locked = weak.lock();
                                   if (!locked) return;
                                   locked->write_wait_armed = false;
                                   if (!wait_error) flush(*locked);
                                 });
      return;
    }
    if (ec) {
      // The worker is going away; its exit hands everything it held to another worker.
      log_warning("handoff to worker failed", {{"id", record.id}, {"pid", record.pid}, {"error", ec.message()}});
      return;
    }
    record.ledger.mark_sent(batch.size());
    stats_.dispatched += batch.size();
  }
}

void master::on_capacity_maybe_restored() {
  dispatch_unassigned();
  if (any_accepting()) capacity_timer_.cancel();  // wakes accept loops waiting for capacity
}

void master::dispatch_unassigned() {
  if (unassigned_.empty()) return;
  std::vector<handoff_entry> waiting;
  waiting.swap(unassigned_);
  for (auto& entry : waiting) dispatch(entry);
  flush_dirty();
}

bool master::read_worker_frames(worker_record& record) {
  bool changed = false;
  for (;;) {
    received_frame frame;
    auto ec = receive_frame(record.channel->native_handle(), record.receive_buffer, frame);
    if (ec == asio::error::would_block) break;
    if (ec == errc::channel_closed) return false;
    // A worker that died with frames unread makes the first recvmsg report ECONNRESET;
    // what it sent before dying is still queued behind it (acknowledgements!).
    if (ec == boost::system::errc::connection_reset) continue;
    if (ec == errc::frame_malformed) {
      // Garbage on the channel: nothing it says can be trusted any more. Its exit reads
      // what is left (the acknowledgements before the garbage still count).
      if (record.state() == worker_state::gone) continue;
      on_protocol_error(record, ec.message());
      return false;
    }
    if (ec) {
      log_warning("bad frame from worker", {{"id", record.id}, {"pid", record.pid}, {"error", ec.message()}});
      if (ec == errc::frame_truncated) continue;
      return false;
    }
    record.heartbeat.seen(steady_clock::now());
    changed = true;
    switch (frame.type) {
      case frame_type::progress: on_progress(record, frame.payload); break;
      case frame_type::control: on_control_message(record, frame.payload); break;
      case frame_type::handback:
        // Idle keep-alive connections of a draining worker: serve them elsewhere. While
        // stopping there is nowhere to go, and an idle connection has nothing in flight.
        for (std::size_t i = 0; i < frame.fd_count; ++i) {
          if (stop_.stopping()) {
            ::close(frame.fds[i]);
            continue;
          }
          ++stats_.migrated;
          dispatch({frame.fds[i], read_listener_index(frame.payload, i)});
        }
        flush_dirty();
        break;
      case frame_type::handoff:
        frame.close_descriptors();
        on_protocol_error(record, "a handoff frame (only the master sends those)");
        break;
    }
    if (!record.channel) return false;  // handling the frame ended the worker's channel
  }
  if (changed) {
    on_capacity_maybe_restored();
    maybe_recycle();
  }
  return true;
}

void master::on_progress(worker_record& record, std::span<const std::byte> payload) {
  auto counters = read_progress(payload);
  if (!counters) return on_protocol_error(record, "a progress frame that does not decode");
  bool consistent =
      record.ledger.acknowledge(counters->received, [](const handoff_entry& entry) { ::close(entry.fd); });
  if (!consistent) {
    on_protocol_error(record,
                      "it acknowledged " + std::to_string(counters->received) + " descriptors, more than it was sent");
    return;
  }
  if (counters->requests > record.progress().requests)
    stats_.requests += counters->requests - record.progress().requests;
  workers_.note_progress(record, *counters);
}

void master::on_control_message(worker_record& record, std::span<const std::byte> payload) {
  std::string_view text(reinterpret_cast<const char*>(payload.data()), payload.size());
  auto message = decode_worker_message(text);
  if (!message)
    return on_protocol_error(record, "a control message that does not decode: " + std::string(text.substr(0, 200)));
  switch (message->kind) {
    case worker_message_kind::ready: on_ready(record); break;
    case worker_message_kind::draining: on_drain_reported(record); break;
    case worker_message_kind::heartbeat:
    case worker_message_kind::reopen_logs:
    case worker_message_kind::drain_without_handback: break;
  }
}

void master::on_protocol_error(worker_record& record, std::string_view what) {
  // Once gone (its exit is being handled) the pid may be someone else's already.
  if (!record.alive() || record.state() == worker_state::gone || record.expected == exit_expectation::protocol_error)
    return;
  log_error("worker protocol error", {{"id", record.id}, {"pid", record.pid}, {"error", what}});
  record.expected = exit_expectation::protocol_error;
  ::kill(record.pid, SIGKILL);  // its waiter reaps it; unacknowledged descriptors go elsewhere
}

void master::send_control(worker_record& record, const worker_message& message) {
  if (!record.channel) return;
  std::string text = encode_worker_message(message);
  auto ec = send_frame(record.channel->native_handle(), frame_type::control, std::as_bytes(std::span(text)));
  if (ec) log_warning("cannot send to worker", {{"id", record.id}, {"pid", record.pid}, {"error", ec.message()}});
}

}  // namespace prefork::detail
