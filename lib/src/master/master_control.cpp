// What the control socket sees of the master: status, workers, stats, config, and the
// commands that act on it (scale, reload, stop, kill/pause/resume a worker, reopen logs).
#include "master_internal.hpp"

#include "prefork/log.hpp"
#include "prefork/run.hpp"

#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json.hpp>

#include <algorithm>
#include <ctime>
#include <fstream>
#include <unistd.h>

namespace prefork::detail {

namespace json = boost::json;

namespace {

std::string rfc3339(std::chrono::system_clock::time_point when) {
  auto millis = std::chrono::duration_cast<std::chrono::milliseconds>(when.time_since_epoch()).count();
  std::time_t seconds = static_cast<std::time_t>(millis / 1000);
  std::tm utc{};
  ::gmtime_r(&seconds, &utc);
  char text[40];
  std::size_t n = std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%S", &utc);
  std::snprintf(text + n, sizeof text - n, ".%03dZ", static_cast<int>(millis % 1000));
  return text;
}

std::uint64_t resident_bytes(pid_t pid) {
  std::ifstream statm("/proc/" + std::to_string(pid) + "/statm");
  std::uint64_t size = 0, resident = 0;
  if (!(statm >> size >> resident)) return 0;
  return resident * static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));
}

failure no_worker(std::int64_t id) { return {errc::not_found, "no live worker with id " + std::to_string(id)}; }

}  // namespace

json::object master::status() {
  json::object result;
  result["pid"] = ::getpid();
  result["version"] = std::string(prefork::version());
  result["uptime_s"] = std::chrono::duration<double>(steady_clock::now() - started_).count();
  result["generation"] = generation_;
  result["state"] = stop_.stopping()   ? "stopping"
                    : reload_.active() ? "reloading"
                    : announced_ready_ ? "running"
                                       : "starting";
  json::object workers;
  workers["desired"] = desired_;
  workers["ready"] = count_current(worker_state::ready);
  workers["starting"] = count_current(worker_state::starting);
  workers["draining"] = workers_.count(worker_state::draining);
  workers["paused"] = count_current(worker_state::paused);
  workers["backoff"] = count_current(worker_state::backoff);
  result["workers"] = std::move(workers);
  json::array listeners;
  for (const auto& slot : listeners_) {
    if (!slot->open) continue;
    listeners.push_back(json::object{{"bind", to_string(slot->info.configured)}, {"address", slot->info.address}});
  }
  result["listeners"] = std::move(listeners);
  result["dispatch"] = settings_->dispatch == dispatch_kind::round_robin ? "round-robin" : "least-connections";
  return result;
}

json::array master::workers() {
  json::array result;
  auto now = steady_clock::now();
  for (const auto& record : workers_.records()) {
    json::object w;
    w["id"] = record->id;
    w["pid"] = record->pid > 0 ? json::value(record->pid) : json::value(nullptr);
    w["generation"] = record->generation;
    w["state"] = std::string(to_string(record->state()));
    w["active"] = record->open();
    w["served"] = record->progress().requests;
    if (record->state() == worker_state::backoff) {
      w["started_at"] = nullptr;
      w["next_attempt_at"] = rfc3339(record->next_attempt);
      w["backoff_streak"] = record->backoff.streak();
    } else {
      w["started_at"] = rfc3339(record->started_wall);
    }
    w["last_heartbeat_ms"] =
        record->alive()
            ? json::value(std::chrono::duration_cast<std::chrono::milliseconds>(record->heartbeat.silence(now)).count())
            : json::value(nullptr);
    w["rss_bytes"] = record->alive() ? resident_bytes(record->pid) : 0;
    result.push_back(std::move(w));
  }
  return result;
}

json::object master::stats() { return to_json(stats_); }

json::object master::effective_config() { return to_json(*settings_).as_object(); }

std::uint64_t master::scale(std::uint64_t desired) {
  set_desired(static_cast<int>(std::min<std::uint64_t>(desired, 1024)));
  return static_cast<std::uint64_t>(desired_);
}

asio::awaitable<result<std::uint64_t>> master::reload(bool wait) {
  if (!wait) {
    auto generation = request_reload(nullptr);
    co_return generation;
  }
  // Wait on a timer that the completion cancels; the outcome lands in shared state.
  struct waiting {
    explicit waiting(asio::io_context& io) : timer(io, steady_clock::time_point::max()) {}
    asio::steady_timer timer;
    std::optional<result<std::uint64_t>> outcome;
  };
  auto state = std::make_shared<waiting>(io_);
  request_reload([state](result<std::uint64_t> outcome) {
    state->outcome = std::move(outcome);
    state->timer.cancel();
  });
  while (!state->outcome) {
    boost::system::error_code ignored;
    co_await state->timer.async_wait(asio::redirect_error(asio::use_awaitable, ignored));
  }
  co_return std::move(*state->outcome);
}

void master::stop(stop_kind kind) { begin_stop(kind); }

result<std::int64_t> master::kill_worker(std::int64_t id, kill_signal signal) {
  record_ptr record = workers_.find(id);
  if (!record || !record->alive()) return no_worker(id);
  std::int64_t pid = record->pid;
  if (signal == kill_signal::kill) {
    log_info("killing worker on request", {{"id", id}, {"pid", pid}});
    record->expected = exit_expectation::retire;
    int ignored_status = 0;
    boost::system::error_code ec;
    record->handle->terminate(ignored_status, ec);
    // It can only fail for a worker that exited meanwhile: its exit is being handled.
    if (ec) log_warning("cannot kill worker", {{"id", id}, {"pid", pid}, {"error", ec.message()}});
  } else if (record->state() == worker_state::ready && record->counts_toward_desired) {
    // TERM: like recycling, the replacement starts first and this one retires once it is
    // ready, so capacity never dips.
    log_info("replacing worker on request", {{"id", id}, {"pid", pid}});
    replace_then_retire(*record);
  } else {
    retire(*record);
  }
  return pid;
}

result<void> master::pause_worker(std::int64_t id) {
  record_ptr record = workers_.find(id);
  if (!record || !record->alive()) return no_worker(id);
  if (!workers_.apply(*record, worker_event::pause))
    return failure{errc::bad_request,
                   "worker " + std::to_string(id) + " is " + std::string(to_string(record->state())) + ", not ready"};
  log_info("worker paused", {{"id", id}, {"pid", record->pid}});
  return {};
}

result<void> master::resume_worker(std::int64_t id) {
  record_ptr record = workers_.find(id);
  if (!record || !record->alive()) return no_worker(id);
  if (!workers_.apply(*record, worker_event::resume))
    return failure{errc::bad_request,
                   "worker " + std::to_string(id) + " is " + std::string(to_string(record->state())) + ", not paused"};
  log_info("worker resumed", {{"id", id}, {"pid", record->pid}});
  on_capacity_maybe_restored();
  return {};
}

result<void> master::reopen_logs() {
  auto ec = prefork::reopen_logs();
  worker_message message;
  message.kind = worker_message_kind::reopen_logs;
  for (const auto& record : workers_.records())
    if (record->alive()) send_control(*record, message);
  if (ec) {
    log_error("cannot reopen log file", {{"error", ec.message()}});
    return failure{errc::reopen_failed, ec.message()};
  }
  log_info("log files reopened");
  return {};
}

}  // namespace prefork::detail
