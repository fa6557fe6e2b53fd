// The master's service integration: the control socket server, the Prometheus metrics
// endpoint, and systemd notifications with the watchdog.
#include "master_internal.hpp"

#include "ops/metrics_endpoint.hpp"
#include "prefork/log.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <sys/socket.h>
#include <unistd.h>

namespace prefork::detail {

namespace {

asio::awaitable<void> run_metrics_accept_loop(master* m) {
  while (auto* watcher = m->metrics_watcher()) {
    auto [ec] =
        co_await watcher->async_wait(asio::posix::stream_descriptor::wait_read, asio::as_tuple(asio::use_awaitable));
    if (ec || m->stopping()) co_return;
    m->accept_metrics();
  }
}

asio::awaitable<void> run_watchdog(master* m, std::chrono::microseconds interval) {
  asio::steady_timer timer(m->io());
  while (!m->stopping()) {
    m->send_watchdog();
    timer.expires_after(interval);
    co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
  }
}

void log_service_failure(std::exception_ptr error) {
  if (!error) return;
  try {
    std::rethrow_exception(error);
  } catch (const std::exception& e) {
    log_warning("metrics or watchdog task failed", {{"error", e.what()}});
  }
}

}  // namespace

void master::start_control() {
  if (hooks_.watchdog_interval) asio::co_spawn(io_, run_watchdog(this, *hooks_.watchdog_interval), log_service_failure);
  if (!control_listener_) return;
  log_info("control socket", {{"address", control_listener_->address}});
  // The server owns the descriptor from now on; the listener record stays for the
  // socket file's removal at exit (and hands the number to an upgrade's successor).
  control_server_ = std::make_unique<control_server>(io_.get_executor(), control_listener_->fd, *this);
  control_server_->start();
}

void master::stop_control() {
  if (control_server_) control_server_->close();
  if (!control_listener_) return;
  control_listener_->fd = -1;                           // closed by the server
  if (upgraded_) control_listener_->owns_path = false;  // the new master serves it now
  close_listener(*control_listener_);
  control_listener_.reset();
}

void master::start_metrics() {
  if (!metrics_listener_) return;
  log_info("metrics endpoint", {{"address", metrics_listener_->address}});
  metrics_watcher_.emplace(io_, metrics_listener_->fd);
  asio::co_spawn(io_, run_metrics_accept_loop(this), log_service_failure);
}

void master::stop_metrics() {
  if (!metrics_listener_) return;
  if (metrics_watcher_) {
    boost::system::error_code ignored;
    metrics_watcher_->cancel(ignored);
    metrics_watcher_->release();
    metrics_watcher_.reset();
  }
  if (upgraded_) metrics_listener_->owns_path = false;
  close_listener(*metrics_listener_);
  metrics_listener_.reset();
}

void master::accept_metrics() {
  for (;;) {
    int fd = ::accept4(metrics_listener_->fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) return;  // EAGAIN, or an error the next wake-up retries
    boost::system::error_code ec;
    socket_type socket(io_);
    socket.assign(asio::generic::stream_protocol(metrics_listener_->family, 0), fd, ec);
    if (ec) {
      ::close(fd);
      continue;
    }
    asio::co_spawn(io_,
                   serve_metrics_connection(std::move(socket), settings_, [this] { return render_metrics_text(); }),
                   log_service_failure);
  }
}

std::string master::render_metrics_text() {
  metrics_snapshot snapshot;
  static_cast<master_stats&>(snapshot) = stats_;
  for (const auto& record : workers_.records()) ++snapshot.workers_by_state[std::string(to_string(record->state()))];
  snapshot.desired_workers = static_cast<std::uint64_t>(desired_);
  snapshot.generation = generation_;
  snapshot.uptime_seconds = std::chrono::duration<double>(steady_clock::now() - started_).count();
  snapshot.handoff = &handoff_latency_;
  return render_metrics(snapshot);
}

void master::notify(std::string_view state) {
  // After an upgrade's handover the successor speaks for the service.
  if (hooks_.notify && !upgraded_) hooks_.notify(state);
}

}  // namespace prefork::detail
