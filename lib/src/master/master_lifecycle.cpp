// The master's lifecycle: signals, reload by generations (HUP), scaling (TTIN/TTOU),
// log reopening (USR1) and stopping (TERM graceful, INT/QUIT fast).
#include "master_internal.hpp"

#include "prefork/log.hpp"

#include <algorithm>
#include <ctime>
#include <unistd.h>

namespace prefork::detail {

namespace {
/// systemd's reload notification: RELOADING=1 with the CLOCK_MONOTONIC time.
std::string reloading_notification() {
  timespec now{};
  ::clock_gettime(CLOCK_MONOTONIC, &now);
  auto usec = static_cast<std::uint64_t>(now.tv_sec) * 1000000u + static_cast<std::uint64_t>(now.tv_nsec) / 1000u;
  return "RELOADING=1\nMONOTONIC_USEC=" + std::to_string(usec);
}
}  // namespace

void master::on_signal(int signal_number) {
  switch (signal_number) {
    case SIGTERM: begin_stop(stop_kind::graceful); break;
    case SIGINT:
    case SIGQUIT: begin_stop(stop_kind::fast); break;
    case SIGHUP: request_reload(nullptr); break;
    case SIGTTIN: set_desired(desired_ + 1); break;
    case SIGTTOU: set_desired(std::max(1, desired_ - 1)); break;
    case SIGUSR1: (void)reopen_logs(); break;
    case SIGUSR2: start_upgrade(); break;
    default: break;
  }
}

void master::set_desired(int desired) {
  if (stop_.stopping()) return;
  if (desired != desired_) log_info("scaling", {{"from", desired_}, {"to", desired}});
  desired_ = desired;
  reconcile();
  notify_status();
}

// --- reload ----------------------------------------------------------------------------

std::uint64_t master::request_reload(reload_callback done) {
  if (stop_.stopping()) {
    if (done) done(failure{errc::bad_request, "the master is stopping"});
    return generation_;
  }
  switch (reload_.request()) {
    case reload_sequencer::request_action::start:
      if (done) reload_waiters_.push_back(std::move(done));
      start_reload();
      return generation_;
    case reload_sequencer::request_action::queued:
    case reload_sequencer::request_action::already_queued:
      log_info("reload queued behind the running one");
      if (done) queued_reload_waiters_.push_back(std::move(done));
      return last_generation_ + 1;
  }
  return generation_;
}

void master::start_reload() {
  auto fail = [&](const std::string& why) {
    log_error("reload failed; the running generation stays", {{"error", why}});
    for (auto& waiter : std::exchange(reload_waiters_, {})) waiter(failure{errc::reload_failed, why});
    if (reload_.failed_to_start()) {
      reload_waiters_ = std::exchange(queued_reload_waiters_, {});
      start_reload();
    }
  };
  if (!hooks_.reread_config) return fail("no configuration file to re-read");
  auto next = hooks_.reread_config();
  if (!next) return fail(next.error().message);

  // Listeners the file adds are opened now (a failure abandons the reload); those it
  // removes are closed at the switch-over; those that stay are never touched.
  std::vector<std::unique_ptr<listener_slot>> added;
  for (const auto& where : next->bind) {
    bool present = std::any_of(listeners_.begin(), listeners_.end(),
                               [&](const auto& slot) { return slot->open && slot->info.configured == where; });
    if (present) continue;
    auto opened = open_listener(where, next->backlog, next->socket_mode_bits);
    if (!opened) {
      for (auto& slot : added) close_listener(slot->info);
      return fail(opened.error().message);
    }
    added.push_back(std::make_unique<listener_slot>(io_, std::move(*opened)));
  }
  for (auto& slot : added) {
    listeners_.push_back(std::move(slot));
    const auto& info = listeners_.back()->info;
    log_info("listening", {{"bind", to_string(info.configured)}, {"address", info.address}});
    spawn_accept_loop(this, listeners_.size() - 1);
  }

  notify(reloading_notification());
  reload_previous_settings_ = settings_;
  reload_previous_desired_ = desired_;
  settings_ = std::make_shared<const config>(std::move(*next));
  desired_ = settings_->workers;
  if (!hooks_.make_policy && settings_->dispatch != reload_previous_settings_->dispatch)
    policy_ = make_dispatch_policy(settings_->dispatch);
  std::uint64_t previous = generation_;
  generation_ = ++last_generation_;
  ++stats_.reloads;
  reload_.started(generation_, previous, steady_clock::now() + settings_->timeout + std::chrono::seconds(1));
  log_info("reloading", {{"generation", generation_}, {"workers", desired_}});
  reconcile();  // starts the new generation
  notify_status();
}

void master::switch_over() {
  log_info("reload: new generation ready, retiring the old one", {{"generation", generation_}});
  for (auto& record : std::vector<record_ptr>(workers_.records()))
    if (record->generation != generation_) retire(*record);
  // Listeners the new file no longer names close now.
  for (auto& slot : listeners_) {
    if (!slot->open) continue;
    bool kept = std::any_of(settings_->bind.begin(), settings_->bind.end(),
                            [&](const bind_address& where) { return where == slot->info.configured; });
    if (!kept) close_listener_slot(*slot);
  }
  for (auto& waiter : std::exchange(reload_waiters_, {})) old_generation_waiters_.push_back(std::move(waiter));
  notify("READY=1");
  if (reload_.finished()) {
    reload_waiters_ = std::exchange(queued_reload_waiters_, {});
    (void)reload_.request();
    start_reload();
  }
  complete_reload_waiters();
}

void master::abandon_reload(const std::string& why) {
  log_error("reload abandoned; the running generation stays", {{"generation", generation_}, {"error", why}});
  std::uint64_t abandoned = generation_;
  generation_ = reload_.previous_generation();
  for (auto& record : std::vector<record_ptr>(workers_.records())) {
    if (record->generation != abandoned) continue;
    record->counts_toward_desired = false;
    if (!record->alive()) {
      retire(*record);
      continue;
    }
    record->expected = exit_expectation::stop;
    workers_.apply(*record, worker_event::drain);  // false when already draining: it stays so
    int ignored_status = 0;
    boost::system::error_code ec;
    record->handle->terminate(ignored_status, ec);
    if (ec) log_warning("cannot kill worker", {{"id", record->id}, {"pid", record->pid}, {"error", ec.message()}});
  }
  // Listeners this reload opened close again.
  for (auto& slot : listeners_) {
    if (!slot->open) continue;
    bool old = std::any_of(reload_previous_settings_->bind.begin(), reload_previous_settings_->bind.end(),
                           [&](const bind_address& where) { return where == slot->info.configured; });
    if (!old) close_listener_slot(*slot);
  }
  settings_ = reload_previous_settings_;
  desired_ = reload_previous_desired_;
  if (!hooks_.make_policy) policy_ = make_dispatch_policy(settings_->dispatch);
  for (auto& waiter : std::exchange(reload_waiters_, {})) waiter(failure{errc::reload_failed, why});
  notify("READY=1");
  reconcile();
  if (reload_.finished()) {
    reload_waiters_ = std::exchange(queued_reload_waiters_, {});
    (void)reload_.request();
    start_reload();
  }
}

void master::complete_reload_waiters() {
  if (old_generation_waiters_.empty()) return;
  if (workers_.older_alive(generation_)) return;
  for (auto& waiter : std::exchange(old_generation_waiters_, {})) waiter(generation_);
}

// --- listeners and stopping --------------------------------------------------------------

void master::close_listener_slot(listener_slot& slot, backlog waiting) {
  if (!slot.open) return;
  slot.open = false;
  log_info("closing listener", {{"address", slot.info.address}});
  boost::system::error_code ignored;
  slot.watcher.cancel(ignored);
  slot.watcher.release();
  if (upgraded_) {
    // The new master owns the socket files now (and accepts on the same sockets): close
    // our descriptor only.
    slot.info.owns_path = false;
  } else if (waiting == backlog::serve) {
    // Remove the socket file first, so no new client connects through it, then take what
    // already waits in the backlog: closing the socket would reset those clients.
    int fd = std::exchange(slot.info.fd, -1);
    close_listener(slot.info);
    slot.info.fd = fd;
    for (std::size_t i = 0; i < listeners_.size(); ++i)
      if (listeners_[i].get() == &slot) accept_backlog(slot, i);
  }
  close_listener(slot.info);
}

void master::begin_stop(stop_kind mode) {
  const stop_sequencer::action action = stop_.request(mode);
  if (action == stop_sequencer::action::ignore) return;
  const bool escalate = action == stop_sequencer::action::escalate;
  log_info("stopping", {{"mode", mode == stop_kind::graceful ? "graceful" : "fast"}});
  notify("STOPPING=1");
  if (!escalate) {
    for (auto& slot : listeners_)
      close_listener_slot(*slot, mode == stop_kind::graceful ? backlog::serve : backlog::drop);
    capacity_timer_.cancel();
    stop_control();
    stop_metrics();
    dispatch_unassigned();
    flush_dirty();
    for (auto* waiters : {&reload_waiters_, &queued_reload_waiters_, &old_generation_waiters_})
      for (auto& waiter : std::exchange(*waiters, {})) waiter(failure{errc::bad_request, "the master is stopping"});
  }
  for (auto& record : std::vector<record_ptr>(workers_.records())) {
    record->counts_toward_desired = false;
    if (!record->alive()) {
      if (record->backoff_timer) record->backoff_timer->cancel();
      remove_record(*record);
      continue;
    }
    if (record->expected != exit_expectation::timeout && record->expected != exit_expectation::protocol_error)
      record->expected = exit_expectation::stop;
    workers_.apply(*record, worker_event::drain);  // false when already draining: it stays so
    boost::system::error_code ec;
    if (mode == stop_kind::fast) {
      record->handle->interrupt(ec);
    } else if (upgraded_) {
      // Handing idle keep-alive connections back would be useless (we stop, and cannot
      // pass them to the successor): the workers answer each one's next request with
      // `Connection: close` instead, so no client of the swap sees a reset.
      worker_message drain;
      drain.kind = worker_message_kind::drain_without_handback;
      send_control(*record, drain);
    } else {
      record->handle->request_exit(ec);
    }
    if (ec) log_warning("cannot signal worker", {{"id", record->id}, {"pid", record->pid}, {"error", ec.message()}});
  }
  workers_.stop_accepting();
  // Whatever is still running at the deadline is killed.
  auto deadline = stop_.deadline(settings_->graceful_timeout);
  stop_timer_.expires_after(deadline);
  stop_timer_.async_wait([this](boost::system::error_code ec) {
    if (ec) return;
    for (const auto& record : workers_.records()) {
      if (!record->alive()) continue;
      log_warning("killing worker after the stop deadline",
                  {{"id", record->id}, {"pid", record->pid}, {"connections", record->open()}});
      int ignored_status = 0;
      boost::system::error_code kill_error;
      record->handle->terminate(ignored_status, kill_error);
      if (kill_error)
        log_warning("cannot kill worker", {{"id", record->id}, {"pid", record->pid}, {"error", kill_error.message()}});
    }
  });
  finish_if_stopped();
}

void master::finish_if_stopped() {
  if (!stop_.stopping() || !workers_.empty()) return;
  for (auto& entry : unassigned_) {
    ::close(entry.fd);
    ++stats_.lost;
  }
  unassigned_.clear();
  stop_timer_.cancel();
  log(log_level::info, "stopped", stats_fields(stats_));
  io_.stop();
}

void master::notify_status() {
  if (!hooks_.notify || upgraded_) return;
  std::string status = "STATUS=" + std::to_string(count_current(worker_state::ready)) + " ready, " +
                       std::to_string(count_current(worker_state::starting)) + " starting, " +
                       std::to_string(workers_.count(worker_state::draining)) + " draining, generation " +
                       std::to_string(generation_);
  notify(status);
}

}  // namespace prefork::detail
