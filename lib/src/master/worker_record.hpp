// One worker process as the master knows it (or a slot waiting in backoff to start one).
// Its state, the descriptors given to it and its last progress report decide where new
// connections go: those three change only through the worker_table (worker_table.hpp),
// which keeps the dispatcher's view in step with them.
#pragma once

#include "channel/ack_ledger.hpp"
#include "channel/channel.hpp"
#include "master/heartbeat_deadline.hpp"
#include "master/restart_backoff.hpp"
#include "master/worker_state.hpp"
#include "prefork/config.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/process/v2/process.hpp>  // (process_handle.hpp alone does not compile in 1.81)

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <sys/types.h>
#include <vector>

namespace prefork::detail {

using process_handle = boost::process::v2::basic_process_handle<boost::asio::any_io_executor>;

/// Why the master expects a worker to exit; `none` makes the exit a crash, and so does
/// `protocol_error` (the master killed it for speaking garbage on its channel).
enum class exit_expectation { none, stop, timeout, retire, protocol_error };

/// Whether an exit with this expectation counts as a crash (logged as an error, counted in
/// worker_crashes, replaced with backoff).
inline bool is_crash(exit_expectation expected) noexcept {
  return expected == exit_expectation::none || expected == exit_expectation::protocol_error;
}

class worker_table;

/// One worker process (or a slot waiting in backoff to start one).
struct worker_record {
  worker_record(int id_, std::uint64_t generation_, std::shared_ptr<const config> settings_);

  int id;
  std::uint64_t generation;
  std::shared_ptr<const config> settings;  // the generation's configuration
  pid_t pid = 0;
  std::optional<process_handle> handle;
  std::optional<boost::asio::posix::stream_descriptor> channel;
  ack_ledger ledger;
  std::uint64_t recycle_after = 0;  // requests; 0: never
  restart_backoff backoff;
  heartbeat_deadline heartbeat;
  std::chrono::steady_clock::time_point started{};
  std::chrono::system_clock::time_point started_wall{};
  std::chrono::system_clock::time_point next_attempt{};  // backoff: when it starts again
  std::optional<boost::asio::steady_timer> backoff_timer;
  exit_expectation expected = exit_expectation::none;
  bool dirty = false;  // has unsent handoffs and is on the master's flush list
  bool write_wait_armed = false;
  bool counts_toward_desired = true;  // false once draining or being replaced
  int replaces = 0;                   // id of the worker this one replaces once ready (recycling), or 0
  std::vector<std::byte> receive_buffer;

  worker_state state() const noexcept { return state_; }
  /// Descriptors given to this worker so far.
  std::uint64_t assigned() const noexcept { return assigned_; }
  /// Its last cumulative report.
  const progress_counters& progress() const noexcept { return progress_; }
  /// Connections the master believes it holds open.
  std::uint64_t open() const noexcept { return assigned_ - progress_.closed; }
  bool alive() const noexcept { return pid > 0; }

 private:
  friend class worker_table;
  worker_state state_ = worker_state::starting;
  std::uint64_t assigned_ = 0;
  progress_counters progress_{};
  std::size_t slot_ = 0;  // its index in the table (records and loads)
};

using record_ptr = std::shared_ptr<worker_record>;

}  // namespace prefork::detail
