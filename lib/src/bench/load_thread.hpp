// One client thread of prefork-bench's load engine: its epoll instance and its connection
// slots, each driven through connect -> write -> read -> next request.
#pragma once

#include "bench/connection_slot.hpp"
#include "prefork/bench.hpp"

#include <boost/system/result.hpp>

#include <sys/socket.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace prefork::detail::bench {

// The resolved target, shared read-only by the threads.
struct target_address {
  sockaddr_storage storage{};
  socklen_t size = 0;
  int family = AF_UNIX;
};

enum class after_failure { next_request_now, pause_first };

// One client thread: its connections, its epoll, its counters.
class load_thread {
 public:
  load_thread(const bench_options& options, const target_address& target, std::string_view fast_request,
              std::string_view slow_request, int connections, std::optional<std::uint64_t> quota);
  load_thread(const load_thread&) = delete;
  load_thread& operator=(const load_thread&) = delete;
  ~load_thread();

  /// Creates the epoll instance; a failure stops the run before it starts.
  boost::system::result<void, std::string> open();

  /// Runs until `end` or until the quota is done and nothing is in flight.
  void run(time_point end);

  const bench_result& result() const noexcept { return result_; }

 private:
  bool may_start_request() const noexcept { return !(quota_ && issued_ >= *quota_); }

  void start_request(connection_slot& slot);
  void open_connection(connection_slot& slot);
  void on_event(connection_slot& slot, std::uint32_t events);
  void write_request(connection_slot& slot);
  void read_response(connection_slot& slot);
  void complete(connection_slot& slot, http_response_scanner::reuse reuse);
  void fail(connection_slot& slot, bench_error kind, after_failure then);
  void pause(connection_slot& slot, after_pause then);
  void expire(time_point now);
  void close_connection(connection_slot& slot) noexcept;

  const bench_options& options_;
  const target_address& target_;
  std::string_view fast_request_;
  std::string_view slow_request_;
  std::vector<connection_slot> slots_;
  std::optional<std::uint64_t> quota_;
  clock_type::duration timeout_;
  std::unique_ptr<char[]> read_buffer_;
  int epoll_fd_ = -1;
  time_point end_;
  std::uint64_t issued_ = 0;
  std::uint64_t mix_counter_ = 0;
  deadline_list in_flight_{&connection_slot::in_flight_hook};
  deadline_list short_pauses_{&connection_slot::pause_hook};
  deadline_list long_pauses_{&connection_slot::pause_hook};
  bench_result result_;
};

}  // namespace prefork::detail::bench
