// The master's driver: its long-lived coroutines (accept loops, worker readers and
// waiters, the tick, signals) and run_master.
#include "master_internal.hpp"

#include "core/signal_reader.hpp"
#include "net/fd_limits.hpp"
#include "prefork/log.hpp"
#include "worker/worker_exec.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <string>

namespace prefork::detail {

master::master(asio::io_context& io, std::shared_ptr<const config> settings, const app& application,
               master_sockets sockets, master_hooks hooks)
    : io_(io),
      settings_(std::move(settings)),
      application_(application),
      hooks_(std::move(hooks)),
      policy_(hooks_.make_policy ? hooks_.make_policy() : make_dispatch_policy(settings_->dispatch)),
      // Connections a worker can hold under the descriptor limit it inherits (fd_limits.hpp):
      // worker_connections above it would have workers lose descriptors in transit.
      workers_(current_worker_connection_capacity()),
      capacity_timer_(io, steady_clock::time_point::max()),
      stop_timer_(io),
      desired_(settings_->workers) {
  for (auto& l : sockets.listeners) listeners_.push_back(std::make_unique<listener_slot>(io, std::move(l)));
  control_listener_ = std::move(sockets.control);
  metrics_listener_ = std::move(sockets.metrics);
  dirty_.reserve(64);
}

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

asio::awaitable<void> run_ticker(master* m) {
  asio::steady_timer timer(m->io());
  while (!m->stopping()) {
    auto period = std::clamp<steady_clock::duration>(m->settings().timeout / 4, std::chrono::milliseconds(20),
                                                     std::chrono::milliseconds(250));
    timer.expires_after(period);
    co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
    m->tick();
  }
}

asio::awaitable<void> run_signal_loop(master* m) {
  signal_reader signals(m->io().get_executor(), handled_signals());
  for (;;) {
    int sig = co_await signals.next();
    if (sig == 0) co_return;
    m->on_signal(sig);
  }
}

void log_task_failure(std::exception_ptr error) {
  if (!error) return;
  try {
    std::rethrow_exception(error);
  } catch (const std::exception& e) {
    log_error("master task failed", {{"error", e.what()}});
  }
}

void spawn_accept_loop(master* m, std::size_t index) {
  asio::co_spawn(m->io(), run_accept_loop(m, index), log_task_failure);
}

void spawn_worker_tasks(master* m, const record_ptr& record) {
  asio::co_spawn(m->io(), run_worker_reader(m, record), log_task_failure);
  asio::co_spawn(m->io(), run_worker_waiter(m, record), log_task_failure);
}

void master::start() {
  for (std::size_t i = 0; i < listeners_.size(); ++i) {
    const auto& info = listeners_[i]->info;
    log_info("listening", {{"bind", to_string(info.configured)}, {"address", info.address}});
    spawn_accept_loop(this, i);
  }
  asio::co_spawn(io_, run_signal_loop(this), log_task_failure);
  asio::co_spawn(io_, run_ticker(this), log_task_failure);
  start_control();
  start_metrics();
  if (workers_.descriptor_capacity() < static_cast<std::uint64_t>(settings_->worker_connections))
    log_warning("worker_connections is above what the open file limit allows a worker",
                {{"worker_connections", settings_->worker_connections}, {"capacity", workers_.descriptor_capacity()}});
  if (settings_->exec.empty()) {
    log_info("master started", {{"workers", desired_}, {"app", application_.name}});
  } else {
    log_info("master started", {{"workers", desired_}, {"exec", exec_command_text(*settings_)}});
  }
  reconcile();
}

int run_master(std::shared_ptr<const config> settings, const app& application, master_sockets sockets,
               master_hooks hooks) {
  // One thread, so the concurrency hint disables Asio's locking.
  asio::io_context io(1);
  master m(io, std::move(settings), application, std::move(sockets), std::move(hooks));
  m.start();
  io.run();
  return m.exit_status();
}

}  // namespace prefork::detail
