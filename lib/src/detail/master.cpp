#include "prefork/detail/master.hpp"

#include "prefork/detail/ack_ledger.hpp"
#include "prefork/detail/channel.hpp"
#include "prefork/detail/heartbeat_deadline.hpp"
#include "prefork/detail/restart_backoff.hpp"
#include "prefork/detail/signal_reader.hpp"
#include "prefork/detail/worker_message.hpp"
#include "prefork/detail/worker_runtime.hpp"
#include "prefork/detail/worker_state.hpp"
#include "prefork/dispatch.hpp"
#include "prefork/log.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/process/v2/process.hpp>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <memory>
#include <optional>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

namespace prefork::detail {

namespace asio = boost::asio;
using steady = std::chrono::steady_clock;
using process_handle = boost::process::v2::basic_process_handle<asio::any_io_executor>;

namespace {

/// Why the master expects a worker to exit; `none` makes the exit a crash.
enum class exit_expectation { none, stop, timeout, retire };

enum class stop_mode { graceful, fast };

struct worker_record {
  worker_record(int id_, std::uint64_t generation_, const config& settings)
      : id(id_), generation(generation_), backoff(settings.restart), heartbeat(settings.timeout, steady::now()) {}

  int id;
  std::uint64_t generation;
  worker_state state = worker_state::starting;
  pid_t pid = 0;
  std::optional<process_handle> handle;
  std::optional<asio::posix::stream_descriptor> channel;
  ack_ledger ledger;
  std::uint64_t assigned = 0;     // descriptors given to this worker
  progress_counters progress{};   // its last cumulative report
  restart_backoff backoff;
  heartbeat_deadline heartbeat;
  steady::time_point started{};
  std::optional<asio::steady_timer> backoff_timer;
  exit_expectation expected = exit_expectation::none;
  bool dirty = false;             // has unsent handoffs and is on the master's flush list
  bool write_wait_armed = false;
  bool counts_toward_desired = true;  // false once draining
  std::vector<std::byte> receive_buffer;

  std::uint64_t open() const noexcept { return assigned - progress.closed; }
  bool alive() const noexcept { return pid > 0 && state != worker_state::gone; }
};

using record_ptr = std::shared_ptr<worker_record>;

std::string signal_name(int sig) {
  const char* abbrev = ::sigabbrev_np(sig);
  return abbrev ? abbrev : std::to_string(sig);
}

class master {
 public:
  master(asio::io_context& io, const config& settings, const app& application, std::vector<listener> listeners)
      : io_(io),
        settings_(settings),
        application_(application),
        policy_(make_dispatch_policy(settings.dispatch)),
        capacity_timer_(io, steady::time_point::max()),
        stop_timer_(io),
        desired_(settings.workers) {
    for (auto& l : listeners) {
      auto slot = std::make_unique<listener_slot>(io, std::move(l));
      listeners_.push_back(std::move(slot));
    }
    for (auto& slot : listeners_) listener_families_.push_back(slot->info.family);
    dirty_.reserve(64);
  }

  struct listener_slot {
    listener_slot(asio::io_context& io, listener l) : info(std::move(l)), watcher(io, info.fd) {}
    listener info;
    asio::posix::stream_descriptor watcher;
    bool open = true;
  };

  asio::io_context& io() { return io_; }
  const config& settings() const { return settings_; }
  bool stopping() const { return stopping_; }
  listener_slot& listener_at(std::size_t i) { return *listeners_[i]; }
  std::size_t listener_count() const { return listeners_.size(); }
  asio::steady_timer& capacity_timer() { return capacity_timer_; }
  master_stats& stats() { return stats_; }

  void start();
  int exit_status() const { return exit_status_; }

  // --- accepting -------------------------------------------------------------------
  bool any_accepting() const {
    return std::any_of(loads_.begin(), loads_.end(), [](const worker_load& l) { return l.accepting; });
  }

  /// Accepts until EAGAIN or until no worker can take more. Returns true on EMFILE/ENFILE.
  bool accept_ready(std::size_t listener_index);

  // --- workers ---------------------------------------------------------------------
  bool read_worker_frames(worker_record& record);
  void on_worker_exit(const record_ptr& record, boost::system::error_code ec, int status);
  void check_heartbeats();
  void spawn(const record_ptr& record);
  void begin_stop(stop_mode mode);

 private:
  void dispatch(handoff_entry entry);
  void flush_dirty();
  void flush(worker_record& record);
  void refresh_loads();
  void refresh_load(const worker_record& record);
  void on_capacity_maybe_restored();
  void dispatch_unassigned();
  void on_ready(worker_record& record, const worker_message& message);
  void on_progress(worker_record& record, std::span<const std::byte> payload);
  void on_drain_reported(worker_record& record);
  void start_replacement(const worker_record& predecessor, std::chrono::milliseconds uptime);
  record_ptr make_record();
  void reconcile();
  void remove_record(const worker_record& record);
  void close_listeners();
  void finish_if_stopped();
  [[noreturn]] void run_child(int worker_channel, const worker_record& record);

  asio::io_context& io_;
  const config& settings_;
  const app& application_;
  std::unique_ptr<dispatch_policy> policy_;
  std::vector<std::unique_ptr<listener_slot>> listeners_;
  std::vector<int> listener_families_;
  std::vector<record_ptr> records_;
  std::vector<worker_load> loads_;           // parallel to records_
  std::vector<worker_record*> dirty_;        // records with unsent handoffs
  std::vector<handoff_entry> unassigned_;    // accepted, no worker could take it yet
  asio::steady_timer capacity_timer_;        // accept loops wait on it while no worker can take more
  asio::steady_timer stop_timer_;
  master_stats stats_;
  int desired_;
  int next_id_ = 1;
  std::uint64_t generation_ = 1;
  bool stopping_ = false;
  stop_mode stop_mode_ = stop_mode::graceful;
  bool announced_ready_ = false;
  int exit_status_ = 0;
};

// --- coroutines (free functions, parameters by value: STYLE 11) ----------------------

asio::awaitable<void> run_accept_loop(master* m, std::size_t index) {
  auto& slot = m->listener_at(index);
  asio::steady_timer pause(m->io());
  while (!m->stopping() && slot.open) {
    if (!m->any_accepting()) {
      // No worker can take a connection: let the kernel backlog hold clients.
      co_await m->capacity_timer().async_wait(asio::as_tuple(asio::use_awaitable));
      continue;
    }
    auto [ec] = co_await slot.watcher.async_wait(asio::posix::stream_descriptor::wait_read,
                                                 asio::as_tuple(asio::use_awaitable));
    if (m->stopping() || !slot.open) co_return;
    if (ec) {
      log_error("waiting on listener failed", {{"address", slot.info.address}, {"error", ec.message()}});
      pause.expires_after(std::chrono::milliseconds(100));
      co_await pause.async_wait(asio::as_tuple(asio::use_awaitable));
      continue;
    }
    if (m->accept_ready(index)) {
      // EMFILE/ENFILE: back off briefly instead of spinning on a readable listener.
      pause.expires_after(std::chrono::milliseconds(100));
      co_await pause.async_wait(asio::as_tuple(asio::use_awaitable));
    }
  }
}

asio::awaitable<void> run_worker_reader(master* m, record_ptr record) {
  while (record->channel) {
    auto [ec] = co_await record->channel->async_wait(asio::posix::stream_descriptor::wait_read,
                                                     asio::as_tuple(asio::use_awaitable));
    if (ec || !record->channel || !m->read_worker_frames(*record)) co_return;
  }
}

asio::awaitable<void> run_worker_waiter(master* m, record_ptr record) {
  auto [ec, status] = co_await record->handle->async_wait(asio::as_tuple(asio::use_awaitable));
  m->on_worker_exit(record, ec, status);
}

asio::awaitable<void> run_heartbeat_watch(master* m) {
  asio::steady_timer timer(m->io());
  auto period = std::clamp<steady::duration>(m->settings().timeout / 4, std::chrono::milliseconds(20),
                                             std::chrono::milliseconds(500));
  while (!m->stopping()) {
    timer.expires_after(period);
    co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
    m->check_heartbeats();
  }
}

asio::awaitable<void> run_signal_loop(master* m) {
  signal_reader signals(m->io().get_executor(), handled_signals());
  for (;;) {
    int sig = co_await signals.next();
    switch (sig) {
      case SIGTERM: m->begin_stop(stop_mode::graceful); break;
      case SIGINT:
      case SIGQUIT: m->begin_stop(stop_mode::fast); break;
      case 0: co_return;
      default:
        log_info("signal not handled yet", {{"signal", signal_name(sig)}});
        break;
    }
  }
}

void log_failure(std::exception_ptr error) {
  if (!error) return;
  try {
    std::rethrow_exception(error);
  } catch (const std::exception& e) {
    log_error("master task failed", {{"error", e.what()}});
  }
}

// --- master ---------------------------------------------------------------------------

void master::start() {
  for (const auto& slot : listeners_)
    log_info("listening", {{"bind", to_string(slot->info.configured)}, {"address", slot->info.address}});
  for (std::size_t i = 0; i < listeners_.size(); ++i) asio::co_spawn(io_, run_accept_loop(this, i), log_failure);
  asio::co_spawn(io_, run_signal_loop(this), log_failure);
  asio::co_spawn(io_, run_heartbeat_watch(this), log_failure);
  log_info("master started", {{"workers", desired_}, {"app", application_.name}});
  reconcile();
}

bool master::accept_ready(std::size_t listener_index) {
  auto& slot = *listeners_[listener_index];
  bool out_of_descriptors = false;
  while (any_accepting()) {
    int fd = ::accept4(slot.info.fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
        ++stats_.accept_pauses;
        log_warning("accept paused: out of descriptors", {{"address", slot.info.address}, {"error", std::strerror(errno)}});
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
  return out_of_descriptors;
}

void master::dispatch(handoff_entry entry) {
  std::optional<std::size_t> choice = policy_->pick(loads_);
  if (!choice && stopping_) {
    // Stopping: every worker is draining, but draining workers still serve what they get.
    std::uint64_t fewest = UINT64_MAX;
    for (std::size_t i = 0; i < records_.size(); ++i)
      if (records_[i]->channel && records_[i]->alive() && records_[i]->open() < fewest) {
        fewest = records_[i]->open();
        choice = i;
      }
  }
  if (!choice) {
    unassigned_.push_back(entry);
    return;
  }
  worker_record& record = *records_[*choice];
  record.ledger.push(entry);
  ++record.assigned;
  refresh_load(record);
  if (!record.dirty) {
    record.dirty = true;
    dirty_.push_back(&record);
  }
}

void master::flush_dirty() {
  // flush() may re-add a record (write wait); iterate over a swapped-out list.
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
      if (!record.write_wait_armed) {
        record.write_wait_armed = true;
        std::weak_ptr<worker_record> weak;
        for (auto& r : records_)
          if (r.get() == &record) weak = r;
        record.channel->async_wait(asio::posix::stream_descriptor::wait_write,
                                   [this, weak](boost::system::error_code wait_error) {
                                     auto locked = weak.lock();
                                     if (!locked) return;
                                     locked->write_wait_armed = false;
                                     if (!wait_error) flush(*locked);
                                   });
      }
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

void master::refresh_loads() {
  loads_.resize(records_.size());
  for (auto& record : records_) refresh_load(*record);
}

void master::refresh_load(const worker_record& record) {
  for (std::size_t i = 0; i < records_.size(); ++i) {
    if (records_[i].get() != &record) continue;
    loads_[i].open = static_cast<std::uint32_t>(record.open());
    loads_[i].accepting = takes_new_connections(record.state) && record.channel &&
                          record.open() < static_cast<std::uint64_t>(settings_.worker_connections);
    return;
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
  bool capacity_changed = false;
  for (;;) {
    received_frame frame;
    auto ec = receive_frame(record.channel->native_handle(), record.receive_buffer, frame);
    if (ec == asio::error::would_block) break;
    if (ec == errc::channel_closed) return false;
    if (ec) {
      log_warning("bad frame from worker", {{"id", record.id}, {"pid", record.pid}, {"error", ec.message()}});
      if (ec == errc::frame_malformed || ec == errc::frame_truncated) continue;
      return false;
    }
    record.heartbeat.seen(steady::now());
    switch (frame.type) {
      case frame_type::progress:
        on_progress(record, frame.payload);
        capacity_changed = true;
        break;
      case frame_type::control: {
        std::string_view text(reinterpret_cast<const char*>(frame.payload.data()), frame.payload.size());
        auto message = decode_worker_message(text);
        if (!message) {
          log_warning("bad control message from worker", {{"id", record.id}, {"pid", record.pid}});
          break;
        }
        if (message->kind == worker_message_kind::ready) on_ready(record, *message);
        else if (message->kind == worker_message_kind::draining) on_drain_reported(record);
        capacity_changed = true;
        break;
      }
      case frame_type::handback:
        // An idle keep-alive connection a draining worker gives back: serve it elsewhere.
        for (std::size_t i = 0; i < frame.fd_count; ++i) {
          ++stats_.migrated;
          dispatch({frame.fds[i], read_listener_index(frame.payload, i)});
        }
        flush_dirty();
        break;
      case frame_type::handoff:
        frame.close_descriptors();
        log_warning("worker sent a handoff frame", {{"id", record.id}});
        break;
    }
  }
  if (capacity_changed) on_capacity_maybe_restored();
  return true;
}

void master::on_progress(worker_record& record, std::span<const std::byte> payload) {
  auto counters = read_progress(payload);
  if (!counters) return;
  bool consistent = record.ledger.acknowledge(counters->received, [](const handoff_entry& entry) { ::close(entry.fd); });
  if (!consistent) {
    log_error("worker acknowledged more than it was sent", {{"id", record.id}, {"received", counters->received}});
    return;
  }
  if (counters->requests > record.progress.requests) stats_.requests += counters->requests - record.progress.requests;
  record.progress = *counters;
  refresh_load(record);
}

void master::on_ready(worker_record& record, const worker_message& message) {
  if (record.state != worker_state::starting) return;
  record.state = worker_state::ready;
  log_info("worker ready", {{"id", record.id}, {"pid", record.pid}, {"generation", record.generation}});
  (void)message;
  refresh_load(record);
  if (!announced_ready_) {
    auto ready = std::count_if(records_.begin(), records_.end(),
                               [](const record_ptr& r) { return r->state == worker_state::ready; });
    if (ready >= desired_) {
      announced_ready_ = true;
      log_info("ready", {{"workers", ready}});
    }
  }
}

void master::on_drain_reported(worker_record& record) {
  if (record.state == worker_state::draining) return;
  // A drain the master did not ask for (a TERM from outside): stop choosing it and
  // start its replacement now.
  record.state = worker_state::draining;
  record.counts_toward_desired = false;
  refresh_load(record);
  log_info("worker draining", {{"id", record.id}, {"pid", record.pid}});
  if (!stopping_) reconcile();
}

void master::on_worker_exit(const record_ptr& record, boost::system::error_code ec, int status) {
  auto uptime = std::chrono::duration_cast<std::chrono::milliseconds>(steady::now() - record->started);
  if (ec) {
    log_error("waiting for worker failed", {{"id", record->id}, {"pid", record->pid}, {"error", ec.message()}});
  } else if (WIFSIGNALED(status)) {
    log(record->expected == exit_expectation::none ? log_level::error : log_level::info, "worker exited",
        {{"id", record->id}, {"pid", record->pid}, {"signal", signal_name(WTERMSIG(status))},
         {"uptime_ms", uptime.count()}});
  } else {
    log(record->expected == exit_expectation::none ? log_level::error : log_level::info, "worker exited",
        {{"id", record->id}, {"pid", record->pid}, {"status", WEXITSTATUS(status)}, {"uptime_ms", uptime.count()}});
  }
  ++stats_.worker_exits;
  if (record->expected == exit_expectation::none) ++stats_.worker_crashes;

  record->state = worker_state::gone;
  record->pid = 0;
  if (record->channel) {
    boost::system::error_code ignored;
    record->channel->close(ignored);
    record->channel.reset();
  }
  record->handle.reset();
  bool counted = record->counts_toward_desired;
  remove_record(*record);

  // Every descriptor it had not acknowledged goes to another worker.
  std::vector<handoff_entry> orphans;
  record->ledger.take_all([&](const handoff_entry& entry) { orphans.push_back(entry); });
  stats_.redispatched += orphans.size();
  for (auto& entry : orphans) dispatch(entry);

  if (!stopping_ && counted) start_replacement(*record, uptime);
  flush_dirty();
  on_capacity_maybe_restored();
  finish_if_stopped();
}

void master::start_replacement(const worker_record& predecessor, std::chrono::milliseconds uptime) {
  record_ptr replacement = make_record();
  replacement->backoff = predecessor.backoff;
  auto delay = replacement->backoff.on_exit(uptime);
  if (delay.count() == 0) return spawn(replacement);
  replacement->state = worker_state::backoff;
  log_warning("worker slot backing off", {{"id", replacement->id}, {"delay_ms", delay.count()},
                                          {"streak", replacement->backoff.streak()}});
  replacement->backoff_timer.emplace(io_, delay);
  std::weak_ptr<worker_record> weak = replacement;
  replacement->backoff_timer->async_wait([this, weak](boost::system::error_code wait_error) {
    auto locked = weak.lock();
    if (wait_error || !locked || stopping_ || locked->state != worker_state::backoff) return;
    locked->state = worker_state::starting;
    spawn(locked);
  });
}

record_ptr master::make_record() {
  auto record = std::make_shared<worker_record>(next_id_++, generation_, settings_);
  records_.push_back(record);
  refresh_loads();
  return record;
}

void master::remove_record(const worker_record& record) {
  std::erase_if(records_, [&](const record_ptr& r) { return r.get() == &record; });
  std::erase(dirty_, &record);
  refresh_loads();
}

void master::reconcile() {
  if (stopping_) return;
  int counted = static_cast<int>(std::count_if(records_.begin(), records_.end(),
                                               [](const record_ptr& r) { return r->counts_toward_desired; }));
  while (counted < desired_) {
    spawn(make_record());
    ++counted;
  }
}

void master::spawn(const record_ptr& record) {
  auto pair = make_channel_pair();
  if (!pair) {
    log_error("cannot create worker channel", {{"id", record->id}, {"error", pair.error().message()}});
    start_replacement(*record, std::chrono::milliseconds(0));
    remove_record(*record);
    return;
  }
  record->state = worker_state::starting;
  record->receive_buffer.resize(max_frame_bytes);
  record->heartbeat = heartbeat_deadline(settings_.timeout, steady::now());
  record->started = steady::now();

  // The fork contract (Asio's fork idiom):
  // 1. tell the io_context a fork is coming, so the reactor can prepare;
  io_.notify_fork(asio::execution_context::fork_prepare);
  pid_t pid = ::fork();
  if (pid == 0) run_child((*pair)[1], *record);  // never returns
  // 2. parent: the reactor goes on as before.
  io_.notify_fork(asio::execution_context::fork_parent);
  ::close((*pair)[1]);
  if (pid < 0) {
    log_error("fork failed", {{"id", record->id}, {"error", std::strerror(errno)}});
    ::close((*pair)[0]);
    remove_record(*record);
    start_replacement(*record, std::chrono::milliseconds(0));
    return;
  }
  record->pid = pid;
  record->channel.emplace(io_, (*pair)[0]);
  // The process handle (a pidfd) is the only thing that waits for this child.
  record->handle.emplace(io_.get_executor(), pid);
  log_info("worker started", {{"id", record->id}, {"pid", pid}, {"generation", record->generation}});
  refresh_load(*record);
  asio::co_spawn(io_, run_worker_reader(this, record), log_failure);
  asio::co_spawn(io_, run_worker_waiter(this, record), log_failure);
}

void master::run_child(int worker_channel, const worker_record& record) {
  // 3. child: let Asio rebuild its reactor state for this process (the master's
  //    io_context is never run here again; the worker builds a fresh one);
  io_.notify_fork(asio::execution_context::fork_child);
  // 4. die with the master, even if it is SIGKILLed (and check it is not gone already);
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() == 1) ::_exit(1);
  // 5. keep only our own channel: no listener, no control socket, no sibling channel;
  if (worker_channel > 3) ::close_range(3, static_cast<unsigned>(worker_channel) - 1, 0);
  ::close_range(static_cast<unsigned>(worker_channel) + 1, ~0U, 0);
  // 6. logs: this process is a worker now, and its log file must be its own descriptor.
  set_log_identity(log_role::worker, record.id);
  (void)reopen_logs();
  // 7. run the worker on a fresh io_context; it ends the process with _exit.
  worker_launch launch;
  launch.channel_fd = worker_channel;
  launch.settings = &settings_;
  launch.application = &application_;
  launch.id = record.id;
  launch.generation = record.generation;
  launch.listener_families = listener_families_;
  run_worker(launch);
}

void master::check_heartbeats() {
  auto now = steady::now();
  for (auto& record : records_) {
    if (!record->alive() || record->expected == exit_expectation::timeout) continue;
    if (!record->heartbeat.expired(now)) continue;
    auto silent = std::chrono::duration_cast<std::chrono::milliseconds>(record->heartbeat.silence(now));
    log_error("worker timeout", {{"id", record->id}, {"pid", record->pid}, {"silent_ms", silent.count()},
                                 {"connections", record->open()}});
    ++stats_.worker_timeouts;
    record->expected = exit_expectation::timeout;
    int ignored_status = 0;
    boost::system::error_code ec;
    record->handle->terminate(ignored_status, ec);
  }
}

void master::close_listeners() {
  for (auto& slot : listeners_) {
    if (!slot->open) continue;
    slot->open = false;
    boost::system::error_code ignored;
    slot->watcher.cancel(ignored);
    slot->watcher.release();
    close_listener(slot->info);
  }
}

void master::begin_stop(stop_mode mode) {
  if (stopping_ && (mode == stop_mode_ || mode == stop_mode::graceful)) return;
  bool escalate = stopping_;
  stopping_ = true;
  stop_mode_ = mode;
  log_info("stopping", {{"mode", mode == stop_mode::graceful ? "graceful" : "fast"}});
  if (!escalate) {
    close_listeners();
    capacity_timer_.cancel();
    dispatch_unassigned();
    flush_dirty();
  }
  for (auto& record : std::vector<record_ptr>(records_)) {
    if (record->state == worker_state::backoff) {
      if (record->backoff_timer) record->backoff_timer->cancel();
      remove_record(*record);
      continue;
    }
    if (!record->alive()) continue;
    record->expected = exit_expectation::stop;
    record->state = worker_state::draining;
    record->counts_toward_desired = false;
    boost::system::error_code ec;
    if (mode == stop_mode::graceful) record->handle->request_exit(ec);
    else record->handle->interrupt(ec);
  }
  refresh_loads();
  auto deadline = mode == stop_mode::graceful ? settings_.graceful_timeout : std::chrono::milliseconds(1000);
  stop_timer_.expires_after(deadline);
  stop_timer_.async_wait([this](boost::system::error_code ec) {
    if (ec) return;
    for (auto& record : records_) {
      if (!record->alive()) continue;
      log_warning("killing worker after stop deadline", {{"id", record->id}, {"pid", record->pid},
                                                          {"connections", record->open()}});
      int ignored_status = 0;
      boost::system::error_code kill_error;
      record->handle->terminate(ignored_status, kill_error);
    }
  });
  finish_if_stopped();
}

void master::finish_if_stopped() {
  if (!stopping_ || !records_.empty()) return;
  for (auto& entry : unassigned_) {
    ::close(entry.fd);
    ++stats_.lost;
  }
  unassigned_.clear();
  stop_timer_.cancel();
  log_info("stopped", {{"accepted", stats_.accepted}, {"dispatched", stats_.dispatched},
                       {"redispatched", stats_.redispatched}, {"migrated", stats_.migrated},
                       {"lost", stats_.lost}, {"accept_pauses", stats_.accept_pauses},
                       {"worker_exits", stats_.worker_exits}, {"worker_crashes", stats_.worker_crashes},
                       {"worker_timeouts", stats_.worker_timeouts}, {"requests", stats_.requests}});
  io_.stop();
}

}  // namespace

int run_master(const config& settings, const app& application, std::vector<listener> listeners) {
  asio::io_context io(1);
  master m(io, settings, application, std::move(listeners));
  m.start();
  io.run();
  return m.exit_status();
}

}  // namespace prefork::detail
