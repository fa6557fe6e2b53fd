// The master's state and its driver, shared by the master_*.cpp files: the worker table,
// listeners, dispatch, lifecycle (reload, scale, recycle, stop) and the control target.
// Decisions live in the plain state machines it calls (dispatch, ack_ledger,
// restart_backoff, heartbeat_deadline, worker_state, reload_sequencer).
#pragma once

#include "channel/ack_ledger.hpp"
#include "channel/channel.hpp"
#include "channel/worker_message.hpp"
#include "control/control_server.hpp"
#include "control/control_target.hpp"
#include "master/heartbeat_deadline.hpp"
#include "master/master.hpp"
#include "master/reload_sequencer.hpp"
#include "master/restart_backoff.hpp"
#include "master/stop_sequencer.hpp"
#include "master/worker_record.hpp"
#include "master/worker_state.hpp"
#include "master/worker_table.hpp"
#include "ops/metrics.hpp"
#include "prefork/dispatch.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/process/v2/process.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace prefork::detail {

namespace asio = boost::asio;
using steady_clock = std::chrono::steady_clock;

struct listener_slot {
  listener_slot(asio::io_context& io, listener l) : info(std::move(l)), watcher(io, info.fd) {}
  listener info;
  asio::posix::stream_descriptor watcher;
  bool open = true;
};

class master final : public control_target {
 public:
  master(asio::io_context& io, std::shared_ptr<const config> settings, const app& application, master_sockets sockets,
         master_hooks hooks);

  asio::io_context& io() { return io_; }
  const config& settings() const { return *settings_; }
  bool stopping() const { return stop_.stopping(); }
  listener_slot& listener_at(std::size_t i) { return *listeners_[i]; }
  asio::steady_timer& capacity_timer() { return capacity_timer_; }
  int exit_status() const { return exit_status_; }

  void start();

  // accepting and dispatch (master_dispatch.cpp)
  bool any_accepting() const;
  /// Accepts until EAGAIN or until no worker can take more. Returns true on EMFILE/ENFILE.
  bool accept_ready(std::size_t listener_index);
  bool read_worker_frames(worker_record& record);

  // workers (master_workers.cpp)
  void on_worker_exit(const record_ptr& record, boost::system::error_code ec, int status);
  void tick();

  // lifecycle (master_lifecycle.cpp)
  void on_signal(int signal_number);
  /// The successor's readiness pipe and process (master_upgrade.cpp).
  asio::posix::stream_descriptor& successor_ready_pipe() { return *successor_ready_pipe_; }
  process_handle& successor() { return *successor_; }
  void on_successor_message(bool ready, const std::string& why);
  void begin_stop(stop_kind mode);
  /// Starts or queues a reload; `done` (optional) gets the new generation once it serves
  /// and the old one is gone, or the error that abandoned it. Returns the generation
  /// number the reload will have.
  std::uint64_t request_reload(std::function<void(result<std::uint64_t>)> done);
  void set_desired(int desired);

  // control_target (master_control.cpp)
  boost::json::object status() override;
  boost::json::array workers() override;
  boost::json::object stats() override;
  boost::json::object effective_config() override;
  std::uint64_t scale(std::uint64_t desired) override;
  asio::awaitable<result<std::uint64_t>> reload(bool wait) override;
  void stop(stop_kind kind) override;
  result<std::int64_t> kill_worker(std::int64_t id, kill_signal signal) override;
  result<void> pause_worker(std::int64_t id) override;
  result<void> resume_worker(std::int64_t id) override;
  result<void> reopen_logs() override;

 private:
  // dispatch
  void dispatch(handoff_entry entry);
  void flush_dirty();
  void flush(worker_record& record);
  void on_capacity_maybe_restored();
  void dispatch_unassigned();
  void on_progress(worker_record& record, std::span<const std::byte> payload);
  void on_control_message(worker_record& record, std::span<const std::byte> payload);
  /// Kills a worker that broke the channel protocol (logged; replaced like a crash).
  void on_protocol_error(worker_record& record, std::string_view what);
  void send_control(worker_record& record, const worker_message& message);

  // workers
  record_ptr make_record(std::uint64_t generation);
  void spawn(const record_ptr& record);
  [[noreturn]] void run_child(int worker_channel, const worker_record& record);
  void start_replacement(const worker_record& predecessor, std::chrono::milliseconds delay);
  void remove_record(const worker_record& record);
  void reconcile();
  void retire(worker_record& record);
  void on_ready(worker_record& record);
  void on_drain_reported(worker_record& record);
  void maybe_recycle();
  void replace_then_retire(worker_record& record);
  void check_heartbeats(steady_clock::time_point now);
  /// Workers of the current generation in `state`.
  int count_current(worker_state state) const { return workers_.count(generation_, state); }
  bool all_current_ready() const;

  // lifecycle
  void start_reload();
  void complete_reload_waiters();
  void switch_over();
  void abandon_reload(const std::string& why);
  void apply_listeners(const config& next, std::vector<std::unique_ptr<listener_slot>>& added, std::string& error);
  enum class backlog { drop, serve };
  void close_listener_slot(listener_slot& slot, backlog waiting = backlog::drop);
  void accept_backlog(listener_slot& slot, std::size_t index);
  void finish_if_stopped();
  void notify_status();

  // upgrade (master_upgrade.cpp)
  void start_upgrade();
  void on_successor_ready();
  void on_successor_failed(const std::string& why);

  // service integration (master_service.cpp): control socket, metrics, systemd
  void start_control();
  void stop_control();
  void start_metrics();
  void stop_metrics();
  void notify(std::string_view state);

 public:
  std::string render_metrics_text();
  void accept_metrics();
  asio::posix::stream_descriptor* metrics_watcher() { return metrics_watcher_ ? &*metrics_watcher_ : nullptr; }
  const master_hooks& hooks() const { return hooks_; }
  void send_watchdog() { notify("WATCHDOG=1"); }

 private:
  asio::io_context& io_;
  std::shared_ptr<const config> settings_;
  const app& application_;
  master_hooks hooks_;
  std::unique_ptr<dispatch_policy> policy_;
  std::vector<std::unique_ptr<listener_slot>> listeners_;  // never shrinks: index = listener id
  worker_table workers_;
  std::vector<worker_record*> dirty_;      // records with unsent handoffs
  std::vector<handoff_entry> unassigned_;  // accepted, no worker could take it yet
  asio::steady_timer capacity_timer_;      // accept loops wait on it while no worker can take more
  asio::steady_timer stop_timer_;
  master_stats stats_;
  reload_sequencer reload_;
  using reload_callback = std::function<void(result<std::uint64_t>)>;
  std::shared_ptr<const config> reload_previous_settings_;
  int reload_previous_desired_ = 0;
  std::vector<reload_callback> reload_waiters_;          // for the running reload
  std::vector<reload_callback> queued_reload_waiters_;   // for the queued one
  std::vector<reload_callback> old_generation_waiters_;  // switched over; wait for the old to go
  int desired_;
  int next_id_ = 1;
  std::uint64_t generation_ = 1;       // the generation new workers join
  std::uint64_t last_generation_ = 1;  // highest generation number used
  stop_sequencer stop_;
  bool announced_ready_ = false;
  int exit_status_ = 0;
  std::optional<listener> control_listener_;
  std::unique_ptr<control_server> control_server_;
  std::optional<listener> metrics_listener_;
  std::optional<asio::posix::stream_descriptor> metrics_watcher_;
  prometheus_histogram handoff_latency_;
  bool upgrading_ = false;  // a successor master is starting (USR2)
  bool upgraded_ = false;   // the successor is ready: it owns the socket files now
  std::optional<process_handle> successor_;
  std::optional<asio::posix::stream_descriptor> successor_ready_pipe_;
  steady_clock::time_point started_ = steady_clock::now();
  steady_clock::time_point last_pause_logged_{};
};

/// Starts the accept loop of listener `index` (master.cpp).
void spawn_accept_loop(master* m, std::size_t index);
/// Starts the channel reader and the exit waiter of a freshly forked worker (master.cpp).
void spawn_worker_tasks(master* m, const record_ptr& record);

}  // namespace prefork::detail
