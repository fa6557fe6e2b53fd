// The master's worker lifecycle: fork (the fork contract), exits and restarts with backoff,
// the desired count, retiring, recycling and heartbeat timeouts. Who the workers are and
// their states live in the worker_table (worker_table.hpp).
#include "master_internal.hpp"

#include "prefork/log.hpp"
#include "worker/worker_exec.hpp"
#include "worker/worker_runtime.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <random>
#include <string>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

namespace prefork::detail {

namespace {

std::string signal_name(int sig) {
  const char* abbrev = ::sigabbrev_np(sig);
  return abbrev ? abbrev : std::to_string(sig);
}

std::chrono::milliseconds milliseconds_since(steady_clock::time_point then) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(steady_clock::now() - then);
}

}  // namespace

record_ptr master::make_record(std::uint64_t generation) {
  auto record = std::make_shared<worker_record>(next_id_++, generation, settings_);
  workers_.add(record);
  return record;
}

void master::remove_record(const worker_record& record) {
  workers_.remove(record);
  std::erase(dirty_, &record);
}

void master::reconcile() {
  if (stop_.stopping()) return;
  for (int n = workers_.counted_toward_desired(generation_); n < desired_; ++n) spawn(make_record(generation_));
  while (workers_.counted_toward_desired(generation_) > desired_) {
    // Fewer workers: the table says whom to give up (a slot in backoff first).
    record_ptr victim = workers_.scale_down_victim(generation_);
    if (!victim) break;
    retire(*victim);
  }
}

void master::retire(worker_record& record) {
  record.counts_toward_desired = false;
  if (record.state() == worker_state::backoff || !record.alive()) {
    if (record.backoff_timer) record.backoff_timer->cancel();
    remove_record(record);
    return;
  }
  if (record.state() == worker_state::draining) return;
  log_info("retiring worker", {{"id", record.id}, {"pid", record.pid}, {"connections", record.open()}});
  record.expected = exit_expectation::retire;
  workers_.apply(record, worker_event::drain);
  // TERM: the worker finishes its requests with `Connection: close` and hands idle
  // keep-alive connections back to us.
  boost::system::error_code ec;
  record.handle->request_exit(ec);
  if (ec) log_warning("cannot signal worker", {{"id", record.id}, {"pid", record.pid}, {"error", ec.message()}});
  notify_status();
}

void master::spawn(const record_ptr& record) {
  auto pair = make_channel_pair();
  if (!pair) {
    log_error("cannot create worker channel", {{"id", record->id}, {"error", pair.error().message()}});
    remove_record(*record);
    start_replacement(*record, record->settings->restart.backoff_initial);
    return;
  }
  const config& settings = *record->settings;
  if (record->state() == worker_state::backoff) workers_.apply(*record, worker_event::backoff_elapsed);
  record->receive_buffer.resize(max_frame_bytes);
  record->heartbeat = heartbeat_deadline(settings.timeout, steady_clock::now());
  record->started = steady_clock::now();
  record->started_wall = std::chrono::system_clock::now();
  // random_device costs tens of microseconds here: only draw when there is jitter.
  std::uint64_t draw = settings.max_requests_jitter > 0 ? std::random_device{}() : 0;
  record->recycle_after = recycle_threshold(settings.max_requests, settings.max_requests_jitter, draw);

  // The fork contract (Asio's fork idiom), step by step:
  // 1. tell the io_context a fork is coming, so the reactor can prepare;
  io_.notify_fork(asio::execution_context::fork_prepare);
  pid_t pid = ::fork();
  if (pid == 0) run_child((*pair)[1], *record);  // never returns
  // 2. parent: the reactor goes on as before; the worker's end of the channel is its own.
  io_.notify_fork(asio::execution_context::fork_parent);
  ::close((*pair)[1]);
  if (pid < 0) {
    log_error("fork failed", {{"id", record->id}, {"error", std::strerror(errno)}});
    ::close((*pair)[0]);
    remove_record(*record);
    start_replacement(*record, record->settings->restart.backoff_initial);
    return;
  }
  record->pid = pid;
  record->channel.emplace(io_, (*pair)[0]);
  // The process handle (a pidfd) is the only thing that waits for this child.
  record->handle.emplace(io_.get_executor(), pid);
  log_info("worker started", {{"id", record->id}, {"pid", pid}, {"generation", record->generation}});
  spawn_worker_tasks(this, record);
}

void master::run_child(int worker_channel, const worker_record& record) {
  // 3. child: let Asio rebuild its reactor state for this process (the master's
  //    io_context is never run here again; the worker builds a fresh one);
  io_.notify_fork(asio::execution_context::fork_child);
  // 4. die with the master, even when it is SIGKILLed (and check it is not gone already);
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() == 1) ::_exit(1);
  // 5. keep only our own channel: no listener, no control socket, no sibling's channel;
  if (worker_channel > 3) ::close_range(3, static_cast<unsigned>(worker_channel) - 1, 0);
  ::close_range(static_cast<unsigned>(worker_channel) + 1, ~0U, 0);
  // 6. this process logs as a worker, through a log file descriptor of its own;
  set_log_identity(log_role::worker, record.id);
  (void)prefork::reopen_logs();
  // 7. run the worker on a fresh io_context; it ends the process with _exit.
  worker_launch launch;
  launch.channel_fd = worker_channel;
  launch.settings = record.settings.get();
  launch.application = &application_;
  launch.id = record.id;
  launch.generation = record.generation;
  for (const auto& slot : listeners_) launch.listener_families.push_back(slot->info.family);
  if (!launch.settings->exec.empty()) exec_worker(launch);  // a worker in another language
  run_worker(launch);
}

void master::on_worker_exit(const record_ptr& record, boost::system::error_code ec, int status) {
  auto uptime = milliseconds_since(record->started);
  bool expected = !is_crash(record->expected);
  log_level level = expected ? log_level::info : log_level::error;
  bool was_ready = record->state() != worker_state::starting;
  // Read what it sent before dying first: its last acknowledgements decide which
  // descriptors it had (and may have read from) and which go to another worker.
  workers_.apply(*record, worker_event::exited);
  if (record->channel) (void)read_worker_frames(*record);
  // Connections it had acknowledged and not closed died with it (a client sees a reset or
  // EOF); the unacknowledged ones are handed to another worker below.
  const std::uint64_t in_service = record->open() - record->ledger.unacknowledged();
  if (ec) {
    log_error("waiting for worker failed", {{"id", record->id}, {"pid", record->pid}, {"error", ec.message()}});
  } else {
    // log_field holds views: every string it shows must outlive `fields`.
    const std::string command = exec_command_text(*record->settings);  // an exec'd worker is named by it too
    const std::string signal = WIFSIGNALED(status) ? signal_name(WTERMSIG(status)) : std::string();
    std::vector<log_field> fields{{"id", record->id}, {"pid", record->pid}};
    if (WIFSIGNALED(status))
      fields.emplace_back("signal", signal);
    else
      fields.emplace_back("status", WEXITSTATUS(status));
    fields.emplace_back("uptime_ms", uptime.count());
    fields.emplace_back("in_service", in_service);
    if (!command.empty()) fields.emplace_back("command", command);
    log(level, "worker exited", fields);
  }
  ++stats_.worker_exits;
  if (!expected) ++stats_.worker_crashes;

  record->pid = 0;
  if (record->channel) {
    boost::system::error_code ignored;
    record->channel->close(ignored);
    record->channel.reset();
  }
  record->handle.reset();
  remove_record(*record);

  // Every descriptor it had not acknowledged goes to another worker.
  std::vector<handoff_entry> orphans;
  record->ledger.take_all([&](const handoff_entry& entry) { orphans.push_back(entry); });
  stats_.redispatched += orphans.size();
  for (auto& entry : orphans) dispatch(entry);

  if (record->replaces != 0 && !was_ready) {
    // A recycling replacement died before it was ready: the old worker stays on, and
    // tries recycling again only after another max_requests (no fork loop).
    workers_.replacement_failed(*record);
  }
  if (!expected && reload_.on_worker_failed(record->generation) == reload_sequencer::outcome::abandon)
    abandon_reload("worker " + std::to_string(record->id) + " of the new generation exited");

  if (!stop_.stopping()) {
    if (record->counts_toward_desired && record->generation == generation_) {
      bool failed = is_crash(record->expected) || record->expected == exit_expectation::timeout;
      start_replacement(*record, failed ? record->backoff.on_exit(uptime) : std::chrono::milliseconds(0));
    } else {
      reconcile();
    }
  }
  flush_dirty();
  on_capacity_maybe_restored();
  maybe_recycle();
  complete_reload_waiters();
  notify_status();
  finish_if_stopped();
}

void master::start_replacement(const worker_record& predecessor, std::chrono::milliseconds delay) {
  if (stop_.stopping()) return;
  record_ptr replacement = make_record(generation_);
  replacement->backoff = predecessor.backoff;
  if (delay.count() == 0) return spawn(replacement);
  workers_.apply(*replacement, worker_event::start_delayed);
  replacement->next_attempt = std::chrono::system_clock::now() + delay;
  log_warning("worker slot backing off",
              {{"id", replacement->id}, {"delay_ms", delay.count()}, {"streak", replacement->backoff.streak()}});
  replacement->backoff_timer.emplace(io_, delay);
  std::weak_ptr<worker_record> weak = replacement;
  replacement->backoff_timer->async_wait([this, weak](boost::system::error_code wait_error) {
    auto locked = weak.lock();
    if (wait_error || !locked || stop_.stopping() || locked->state() != worker_state::backoff) return;
    spawn(locked);
  });
}

void master::on_ready(worker_record& record) {
  if (!workers_.apply(record, worker_event::ready_received)) return;  // only a starting worker becomes ready
  log_info("worker ready", {{"id", record.id}, {"pid", record.pid}, {"generation", record.generation}});
  if (record.replaces != 0) {
    // Recycling: the replacement serves, so the old worker retires now.
    if (auto old = workers_.find(record.replaces)) retire(*old);
    record.replaces = 0;
  }
  if (reload_.on_ready(record.generation, count_current(worker_state::ready), desired_) ==
      reload_sequencer::outcome::switch_over)
    switch_over();
  if (!announced_ready_ && count_current(worker_state::ready) >= desired_) {
    announced_ready_ = true;
    log_info("ready", {{"workers", count_current(worker_state::ready)}, {"generation", generation_}});
    notify("READY=1");
    if (hooks_.on_first_ready) hooks_.on_first_ready();
  }
  notify_status();
}

void master::on_drain_reported(worker_record& record) {
  if (record.state() == worker_state::draining) return;
  // A drain the master did not ask for (a TERM from outside): stop choosing it, and start
  // its replacement now.
  log_warning("worker draining on an outside signal", {{"id", record.id}, {"pid", record.pid}});
  workers_.apply(record, worker_event::drain);
  record.counts_toward_desired = false;
  reconcile();
}

void master::maybe_recycle() {
  if (stop_.stopping() || reload_.active()) return;
  const record_ptr due = workers_.due_for_recycling(generation_);
  if (!due) return;
  log_info("recycling worker", {{"id", due->id}, {"pid", due->pid}, {"served", due->progress().requests}});
  ++stats_.worker_recycled;
  replace_then_retire(*due);
}

void master::replace_then_retire(worker_record& record) {
  // The replacement starts first; the old worker retires once it is ready (on_ready), so
  // capacity never dips.
  record.counts_toward_desired = false;
  record_ptr replacement = make_record(record.generation);
  replacement->replaces = record.id;
  spawn(replacement);
}

void master::check_heartbeats(steady_clock::time_point now) {
  for (const auto& record : workers_.records()) {
    if (!record->alive() || record->expected == exit_expectation::timeout) continue;
    if (record->heartbeat.expired(now)) {
      auto silent = std::chrono::duration_cast<std::chrono::milliseconds>(record->heartbeat.silence(now));
      log_error(
          "worker timeout",
          {{"id", record->id}, {"pid", record->pid}, {"silent_ms", silent.count()}, {"connections", record->open()}});
    } else if (record->state() == worker_state::starting && now - record->started > record->settings->timeout) {
      // Alive (it sends heartbeats) but never ready: as useless as a silent one.
      log_error("worker not ready in time",
                {{"id", record->id}, {"pid", record->pid}, {"timeout_ms", record->settings->timeout.count()}});
    } else {
      continue;
    }
    ++stats_.worker_timeouts;
    record->expected = exit_expectation::timeout;
    int ignored_status = 0;
    boost::system::error_code ec;
    record->handle->terminate(ignored_status, ec);
    if (ec) log_warning("cannot kill worker", {{"id", record->id}, {"pid", record->pid}, {"error", ec.message()}});
  }
}

void master::tick() {
  auto now = steady_clock::now();
  check_heartbeats(now);
  if (reload_.on_tick(now) == reload_sequencer::outcome::abandon)
    abandon_reload("the new generation was not ready in time");
}

}  // namespace prefork::detail
