// USR2: start a new master from the executable on disk with our listening sockets (and
// the control socket) inherited; once it says READY, drain and exit, leaving the socket
// files to it. If it dies first, we go on serving as if nothing happened.
#include "master_internal.hpp"

#include "prefork/log.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/streambuf.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/process/v2/process.hpp>

#include <cstdlib>
#include <fcntl.h>
#include <unistd.h>

namespace prefork::detail {

namespace {

/// A Boost.Process v2 initializer: these descriptors survive exec in the child.
struct inherit_descriptors {
  std::vector<int> fds;

  template <class Launcher>
  boost::system::error_code on_exec_setup(Launcher& launcher, const boost::process::v2::filesystem::path&,
                                          const char* const*) {
    for (int fd : fds) {
      if (::fcntl(fd, F_SETFD, 0) != 0) return {errno, boost::system::system_category()};
      launcher.fd_whitelist.push_back(fd);
    }
    return {};
  }
};

asio::awaitable<void> run_successor_watch(master* m) {
  // Either the successor says READY on its pipe, or the pipe ends (it died or failed).
  asio::streambuf buffer(64);
  auto [ec, size] =
      co_await asio::async_read_until(m->successor_ready_pipe(), buffer, '\n', asio::as_tuple(asio::use_awaitable));
  std::string line(asio::buffers_begin(buffer.data()),
                   asio::buffers_begin(buffer.data()) + static_cast<std::ptrdiff_t>(size));
  m->on_successor_message(!ec && line == "READY\n",
                          ec ? "its readiness pipe closed: " + ec.message() : "it said " + line);
}

asio::awaitable<void> run_successor_reaper(master* m) {
  auto [ec, status] = co_await m->successor().async_wait(asio::as_tuple(asio::use_awaitable));
  m->on_successor_message(false, "it exited with status " + std::to_string(status));
}

void log_watch_failure(std::exception_ptr error) {
  if (!error) return;
  try {
    std::rethrow_exception(error);
  } catch (const std::exception& e) {
    log_error("upgrade watch failed", {{"error", e.what()}});
  }
}

}  // namespace

void master::start_upgrade() {
  if (stop_.stopping() || upgrading_) {
    log_warning("upgrade ignored", {{"reason", stop_.stopping() ? "stopping" : "an upgrade is running"}});
    return;
  }
  if (hooks_.executable.empty()) {
    log_error("upgrade impossible: the executable is unknown");
    return;
  }
  int ready_pipe[2];
  if (::pipe2(ready_pipe, O_CLOEXEC) != 0) {
    log_error("upgrade failed: pipe", {{"error", std::strerror(errno)}});
    return;
  }
  inherit_descriptors inherit;
  std::string inherited;
  for (const auto& slot : listeners_) {
    if (!slot->open) continue;
    inherit.fds.push_back(slot->info.fd);
    inherited += std::to_string(slot->info.fd) + "=" + to_string(slot->info.configured) + ";";
  }
  if (control_listener_) {
    inherit.fds.push_back(control_listener_->fd);
    inherited += std::to_string(control_listener_->fd) + "=control;";
  }
  if (metrics_listener_) {
    inherit.fds.push_back(metrics_listener_->fd);
    inherited += std::to_string(metrics_listener_->fd) + "=metrics;";
  }
  inherit.fds.push_back(ready_pipe[1]);
  // The launcher passes our environment (environ) as it is when it forks.
  ::setenv(inherit_environment_variable, inherited.c_str(), 1);
  ::setenv(upgrade_ready_fd_variable, std::to_string(ready_pipe[1]).c_str(), 1);
  boost::system::error_code ec;
  boost::process::v2::posix::default_launcher launcher;
  auto successor = launcher(io_.get_executor(), ec, boost::process::v2::filesystem::path(hooks_.executable),
                            hooks_.arguments, inherit);
  ::unsetenv(inherit_environment_variable);
  ::unsetenv(upgrade_ready_fd_variable);
  ::close(ready_pipe[1]);
  if (ec) {
    ::close(ready_pipe[0]);
    log_error("upgrade failed: cannot start the new master",
              {{"executable", hooks_.executable}, {"error", ec.message()}});
    return;
  }
  upgrading_ = true;
  log_info("upgrade: new master started", {{"pid", successor.id()}, {"executable", hooks_.executable}});
  successor_.emplace(successor.detach());
  successor_ready_pipe_.emplace(io_, ready_pipe[0]);
  asio::co_spawn(io_, run_successor_watch(this), log_watch_failure);
  asio::co_spawn(io_, run_successor_reaper(this), log_watch_failure);
}

void master::on_successor_message(bool ready, const std::string& why) {
  if (!upgrading_ || upgraded_) return;
  if (ready) return on_successor_ready();
  on_successor_failed(why);
}

void master::on_successor_ready() {
  upgraded_ = true;
  if (hooks_.on_handover) hooks_.on_handover();
  log_info("upgrade: new master ready; this master drains and exits", {{"pid", successor_->id()}});
  boost::system::error_code ignored;
  successor_ready_pipe_->close(ignored);
  begin_stop(stop_kind::graceful);
}

void master::on_successor_failed(const std::string& why) {
  log_error("upgrade failed: the new master did not become ready; this master goes on", {{"error", why}});
  upgrading_ = false;
  boost::system::error_code ignored;  // closing a pipe we only read from: nothing to do about it
  if (successor_ready_pipe_) successor_ready_pipe_->close(ignored);
  // If it is still running (it closed the pipe without READY), it must not live on
  // beside us holding our sockets.
  if (successor_) {
    int ignored_status = 0;
    boost::system::error_code ec;
    successor_->terminate(ignored_status, ec);
    if (ec) log_error("cannot kill the failed successor", {{"error", ec.message()}});
  }
}

}  // namespace prefork::detail
