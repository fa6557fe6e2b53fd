// The load engine of prefork-bench: each thread owns an epoll instance and a fixed array of
// connection slots, and drives each slot through connect -> write -> read -> next request.
// Everything a request needs (its bytes, its scanner, its list links) lives in its slot,
// so a request costs system calls and no allocation.
#include "prefork/bench.hpp"

#include "prefork/socket_connect.hpp"

#include <netdb.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cstring>
#include <memory>
#include <thread>

namespace prefork {
namespace {

using clock_type = std::chrono::steady_clock;
using time_point = clock_type::time_point;
using namespace std::chrono_literals;

constexpr std::size_t read_buffer_bytes = 64 * 1024;
constexpr int max_events = 256;
// After a refused connect (no listener): a client must not spin against a closed socket.
constexpr auto refused_pause = 10ms;
// After EAGAIN from a Unix connect (the listen backlog is full): retry the same request soon.
constexpr auto backlog_full_pause = 1ms;

struct connection_slot;
class deadline_list;

struct list_hook {
  connection_slot* previous = nullptr;
  connection_slot* next = nullptr;
  deadline_list* owner = nullptr;
};

enum class slot_phase { idle, connecting, writing, reading, paused };
enum class after_pause { next_request, retry_connect };
enum class after_failure { next_request_now, pause_first };

struct connection_slot {
  int fd = -1;
  slot_phase phase = slot_phase::idle;
  after_pause resume_with = after_pause::next_request;
  bool slow = false;
  bool watching_writable = false;
  bool readable_pending = false;  // EPOLLIN seen while still writing (edge-triggered)
  std::string_view request;
  std::size_t written = 0;
  time_point started;
  time_point deadline;   // of the request in flight
  time_point resume_at;  // of a pause
  list_hook in_flight_hook;
  list_hook pause_hook;
  http_response_scanner scanner;
};

// A FIFO of slots whose entries all wait the same delay, so appending keeps it sorted by
// deadline and the front is always the next to expire. Intrusive: O(1), no allocation.
class deadline_list {
 public:
  explicit deadline_list(list_hook connection_slot::*hook) noexcept : hook_(hook) {}

  connection_slot* front() const noexcept { return head_; }
  bool empty() const noexcept { return head_ == nullptr; }
  std::size_t size() const noexcept {
    std::size_t count = 0;
    for (auto* slot = head_; slot != nullptr; slot = (slot->*hook_).next) ++count;
    return count;
  }

  void push_back(connection_slot& slot) noexcept {
    auto& hook = slot.*hook_;
    if (hook.owner != nullptr) hook.owner->remove(slot);
    hook.owner = this;
    hook.previous = tail_;
    hook.next = nullptr;
    if (tail_ != nullptr)
      (tail_->*hook_).next = &slot;
    else
      head_ = &slot;
    tail_ = &slot;
  }

  void remove(connection_slot& slot) noexcept {
    auto& hook = slot.*hook_;
    if (hook.owner != this) return;
    if (hook.previous != nullptr)
      (hook.previous->*hook_).next = hook.next;
    else
      head_ = hook.next;
    if (hook.next != nullptr)
      (hook.next->*hook_).previous = hook.previous;
    else
      tail_ = hook.previous;
    hook = {};
  }

 private:
  list_hook connection_slot::*hook_;
  connection_slot* head_ = nullptr;
  connection_slot* tail_ = nullptr;
};

void remove_from_owner(connection_slot& slot, list_hook connection_slot::*hook) noexcept {
  if (auto* owner = (slot.*hook).owner) owner->remove(slot);
}

bench_error classify_errno(int error) noexcept {
  switch (error) {
    case ECONNREFUSED:
    case ENOENT: return bench_error::connect_refused;
    case ECONNRESET:
    case EPIPE: return bench_error::reset;
    case ETIMEDOUT: return bench_error::timeout;
    default: return bench_error::other;
  }
}

// The resolved target, shared read-only by the threads.
struct target_address {
  sockaddr_storage storage{};
  socklen_t size = 0;
  int family = AF_UNIX;
};

boost::system::result<target_address, std::string> resolve(const bench_options& options) {
  target_address target;
  if (options.target == bench_options::target_kind::unix_path) {
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    if (options.unix_path.size() >= sizeof(address.sun_path)) return std::string("socket path too long");
    std::memcpy(address.sun_path, options.unix_path.data(), options.unix_path.size());
    std::memcpy(&target.storage, &address, sizeof(address));
    target.size = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + options.unix_path.size() + 1);
    target.family = AF_UNIX;
    return target;
  }
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* found = nullptr;
  const auto port = std::to_string(options.tcp_port);
  if (const int rc = getaddrinfo(options.tcp_host.c_str(), port.c_str(), &hints, &found); rc != 0) {
    return "cannot resolve " + options.tcp_host + ": " + gai_strerror(rc);
  }
  std::memcpy(&target.storage, found->ai_addr, found->ai_addrlen);
  target.size = found->ai_addrlen;
  target.family = found->ai_family;
  freeaddrinfo(found);
  return target;
}

std::string build_request(std::string_view path, const bench_options& options) {
  std::string request = "GET ";
  request.append(path).append(" HTTP/1.1\r\nHost: ").append(options.host_header).append("\r\n");
  if (options.mode == bench_mode::close) request.append("Connection: close\r\n");
  request.append("\r\n");
  return request;
}

// One client thread: its connections, its epoll, its counters.
class load_thread {
 public:
  load_thread(const bench_options& options, const target_address& target, std::string_view fast_request,
              std::string_view slow_request, int connections, std::optional<std::uint64_t> quota)
      : options_(options),
        target_(target),
        fast_request_(fast_request),
        slow_request_(slow_request),
        slots_(static_cast<std::size_t>(connections)),
        quota_(quota),
        timeout_(std::chrono::duration_cast<clock_type::duration>(std::chrono::duration<double>(options.timeout_s))),
        read_buffer_(std::make_unique<char[]>(read_buffer_bytes)) {
    result_.mode = options.mode;
  }
  load_thread(const load_thread&) = delete;
  load_thread& operator=(const load_thread&) = delete;
  ~load_thread() {
    for (auto& slot : slots_) close_connection(slot);
    if (epoll_fd_ >= 0) ::close(epoll_fd_);
  }

  /// Creates the epoll instance; a failure stops the run before it starts.
  boost::system::result<void, std::string> open() {
    epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
    if (epoll_fd_ < 0) return std::string("epoll_create1: ") + std::strerror(errno);
    return {};
  }

  /// Runs until `end` or until the quota is done and nothing is in flight.
  void run(time_point end) {
    end_ = end;
    for (auto& slot : slots_) start_request(slot);
    std::array<epoll_event, max_events> events{};
    while (true) {
      auto now = clock_type::now();
      if (now >= end_) break;
      expire(now);
      if (in_flight_.empty() && short_pauses_.empty() && long_pauses_.empty()) break;  // quota done
      auto next = end_;
      if (auto* slot = in_flight_.front()) next = std::min(next, slot->deadline);
      if (auto* slot = short_pauses_.front()) next = std::min(next, slot->resume_at);
      if (auto* slot = long_pauses_.front()) next = std::min(next, slot->resume_at);
      const auto wait = std::chrono::ceil<std::chrono::milliseconds>(next - now).count();
      const int wait_ms = static_cast<int>(std::clamp<long long>(wait, 0, INT_MAX));
      const int count = epoll_wait(epoll_fd_, events.data(), max_events, wait_ms);
      if (count < 0) {
        if (errno == EINTR) continue;
        ++result_.errors[static_cast<std::size_t>(bench_error::other)];
        break;
      }
      for (int i = 0; i < count; ++i) {
        on_event(*static_cast<connection_slot*>(events[static_cast<std::size_t>(i)].data.ptr),
                 events[static_cast<std::size_t>(i)].events);
      }
    }
    result_.unfinished = in_flight_.size();
    for (auto& slot : slots_) close_connection(slot);
  }

  const bench_result& result() const noexcept { return result_; }

 private:
  bool may_start_request() const noexcept { return !(quota_ && issued_ >= *quota_); }

  void start_request(connection_slot& slot) {
    if (!may_start_request()) {
      close_connection(slot);
      return;
    }
    ++issued_;
    const auto& mix = options_.mix;
    slot.slow = mix && (mix_counter_++ % mix->denominator) < mix->numerator;
    slot.request = slot.slow ? slow_request_ : fast_request_;
    slot.written = 0;
    slot.readable_pending = false;
    slot.started = clock_type::now();
    slot.deadline = slot.started + timeout_;
    in_flight_.push_back(slot);
    if (slot.fd < 0) {
      open_connection(slot);
    } else {
      slot.phase = slot_phase::writing;
      write_request(slot);
    }
  }

  void open_connection(connection_slot& slot) {
    const int fd = ::socket(target_.family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      fail(slot, classify_errno(errno), after_failure::pause_first);
      return;
    }
    slot.fd = fd;
    // connect before registering: an unconnected TCP socket polls as EPOLLHUP, which an
    // edge-triggered registration would report once and mislead the connecting phase.
    const connect_attempt attempt = try_connect(fd, reinterpret_cast<const sockaddr*>(&target_.storage), target_.size);
    if (attempt.progress == connect_progress::backlog_full) {
      // A Unix listener's backlog is full: the request is not failed, it waits its turn.
      close_connection(slot);
      ++result_.connect_retries;
      pause(slot, after_pause::retry_connect);
      return;
    }
    if (attempt.progress == connect_progress::failed) {
      close_connection(slot);
      fail(slot, classify_errno(attempt.error.value()), after_failure::pause_first);
      return;
    }
    // TCP needs EPOLLOUT to learn that the connect finished; a Unix socket would report
    // EPOLLOUT each time the server reads a request, so it asks only after a short write.
    const bool tcp = target_.family != AF_UNIX;
    epoll_event event{};
    event.events = EPOLLIN | EPOLLET | (tcp ? EPOLLOUT : 0u);
    event.data.ptr = &slot;
    if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &event) != 0) {
      fail(slot, bench_error::other, after_failure::pause_first);
      return;
    }
    slot.watching_writable = tcp;
    if (attempt.progress == connect_progress::connected) {
      slot.phase = slot_phase::writing;
      write_request(slot);
    } else {
      slot.phase = slot_phase::connecting;
    }
  }

  void on_event(connection_slot& slot, std::uint32_t events) {
    switch (slot.phase) {
      case slot_phase::connecting:
        if ((events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) != 0) {
          if (auto error = finish_connect(slot.fd)) {
            fail(slot, classify_errno(error.value()), after_failure::pause_first);
            return;
          }
          slot.phase = slot_phase::writing;
          if ((events & EPOLLIN) != 0) slot.readable_pending = true;
          write_request(slot);
        }
        break;
      case slot_phase::writing:
        if ((events & EPOLLIN) != 0) slot.readable_pending = true;
        if ((events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) != 0) write_request(slot);
        break;
      case slot_phase::reading:
        if ((events & (EPOLLIN | EPOLLERR | EPOLLHUP)) != 0) read_response(slot);
        break;
      case slot_phase::idle:
      case slot_phase::paused: break;  // a late edge of a connection with nothing in flight
    }
  }

  void write_request(connection_slot& slot) {
    while (slot.written < slot.request.size()) {
      const auto sent = ::send(slot.fd, slot.request.data() + slot.written, slot.request.size() - slot.written,
                               MSG_NOSIGNAL | MSG_DONTWAIT);
      if (sent >= 0) {
        slot.written += static_cast<std::size_t>(sent);
        continue;
      }
      if (errno == EINTR) continue;
      if (errno == EAGAIN) {
        if (!slot.watching_writable) {
          epoll_event event{};
          event.events = EPOLLIN | EPOLLOUT | EPOLLET;
          event.data.ptr = &slot;
          if (epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, slot.fd, &event) != 0) {
            fail(slot, bench_error::other, after_failure::next_request_now);
            return;
          }
          slot.watching_writable = true;
        }
        return;
      }
      fail(slot, classify_errno(errno), after_failure::next_request_now);
      return;
    }
    slot.phase = slot_phase::reading;
    slot.scanner.reset();
    if (slot.readable_pending) {
      slot.readable_pending = false;
      read_response(slot);
    }
  }

  void read_response(connection_slot& slot) {
    char* buffer = read_buffer_.get();
    while (true) {
      const auto received = ::recv(slot.fd, buffer, read_buffer_bytes, 0);
      if (received > 0) {
        const auto size = static_cast<std::size_t>(received);
        const auto scanned = slot.scanner.feed({buffer, size});
        switch (scanned.state) {
          case http_response_scanner::scan_state::need_more: continue;
          case http_response_scanner::scan_state::malformed:
            fail(slot, bench_error::malformed, after_failure::next_request_now);
            return;
          case http_response_scanner::scan_state::complete:
            if (scanned.consumed != size) {
              fail(slot, bench_error::malformed, after_failure::next_request_now);  // bytes nobody asked for
            } else {
              complete(slot, slot.scanner.connection_reuse());
            }
            return;
        }
      }
      if (received == 0) {
        if (slot.scanner.finish_at_eof() == http_response_scanner::scan_state::complete) {
          complete(slot, http_response_scanner::reuse::close);
        } else {
          fail(slot, bench_error::eof_before_response, after_failure::next_request_now);
        }
        return;
      }
      if (errno == EINTR) continue;
      if (errno == EAGAIN) return;  // wait for the next edge
      fail(slot, classify_errno(errno), after_failure::next_request_now);
      return;
    }
  }

  void complete(connection_slot& slot, http_response_scanner::reuse reuse) {
    const auto latency = clock_type::now() - slot.started;
    in_flight_.remove(slot);
    if (slot.scanner.status_code() != options_.expected_status) {
      ++result_.errors[static_cast<std::size_t>(bench_error::bad_status)];
    } else {
      const auto nanoseconds = static_cast<std::uint64_t>(
          std::max<std::int64_t>(0, std::chrono::duration_cast<std::chrono::nanoseconds>(latency).count()));
      ++result_.requests;
      result_.latency.record(nanoseconds);
      if (slot.slow) {
        ++result_.slow_requests;
        result_.slow_latency.record(nanoseconds);
      } else {
        result_.fast_latency.record(nanoseconds);
      }
    }
    if (options_.mode == bench_mode::close || reuse == http_response_scanner::reuse::close) {
      if (options_.mode == bench_mode::keep_alive) ++result_.reconnects;
      close_connection(slot);
    }
    start_request(slot);
  }

  void fail(connection_slot& slot, bench_error kind, after_failure then) {
    ++result_.errors[static_cast<std::size_t>(kind)];
    in_flight_.remove(slot);
    remove_from_owner(slot, &connection_slot::pause_hook);
    close_connection(slot);
    if (then == after_failure::pause_first) {
      pause(slot, after_pause::next_request);
    } else {
      start_request(slot);
    }
  }

  void pause(connection_slot& slot, after_pause then) {
    slot.phase = slot_phase::paused;
    slot.resume_with = then;
    const bool retry = then == after_pause::retry_connect;
    slot.resume_at =
        clock_type::now() + (retry ? clock_type::duration(backlog_full_pause) : clock_type::duration(refused_pause));
    (retry ? short_pauses_ : long_pauses_).push_back(slot);
  }

  void expire(time_point now) {
    while (auto* slot = in_flight_.front()) {
      if (slot->deadline > now) break;
      fail(*slot, bench_error::timeout, after_failure::next_request_now);
    }
    for (auto* pauses : {&short_pauses_, &long_pauses_}) {
      while (auto* slot = pauses->front()) {
        if (slot->resume_at > now) break;
        pauses->remove(*slot);
        if (slot->resume_with == after_pause::retry_connect) {
          open_connection(*slot);
        } else {
          start_request(*slot);
        }
      }
    }
  }

  void close_connection(connection_slot& slot) noexcept {
    if (slot.fd >= 0) ::close(slot.fd);  // also leaves the epoll set
    slot.fd = -1;
    slot.watching_writable = false;
    slot.phase = slot_phase::idle;
  }

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

// Enough descriptors for every connection (plus stdio and epoll), if the hard limit allows.
void raise_descriptor_limit(int connections) {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return;
  const rlim_t wanted = static_cast<rlim_t>(connections) + 64;
  if (limit.rlim_cur >= wanted) return;
  limit.rlim_cur = std::min(wanted, limit.rlim_max);
  setrlimit(RLIMIT_NOFILE, &limit);
}

}  // namespace

std::uint64_t bench_result::total_errors() const noexcept {
  std::uint64_t total = 0;
  for (const auto count : errors) total += count;
  return total;
}

boost::system::result<bench_result, std::string> run_bench(const bench_options& options) {
  auto target = resolve(options);
  if (!target) return target.error();
  raise_descriptor_limit(options.connections);
  const auto fast_request = build_request(options.path, options);
  const auto slow_request = options.mix ? build_request(options.mix->path, options) : fast_request;

  const auto threads = static_cast<std::size_t>(options.threads);
  const auto connections = static_cast<std::size_t>(options.connections);
  std::vector<std::unique_ptr<load_thread>> loads;
  for (std::size_t i = 0; i < threads; ++i) {
    const int share = static_cast<int>(connections / threads + (i < connections % threads ? 1 : 0));
    std::optional<std::uint64_t> quota;
    if (options.requests) quota = *options.requests / threads + (i < *options.requests % threads ? 1 : 0);
    loads.push_back(std::make_unique<load_thread>(options, *target, fast_request, slow_request, share, quota));
    if (auto opened = loads.back()->open(); !opened) return opened.error();
  }

  const auto started = clock_type::now();
  const auto end = options.duration_s ? started + std::chrono::duration_cast<clock_type::duration>(
                                                      std::chrono::duration<double>(*options.duration_s))
                                      : time_point::max();
  std::vector<std::thread> running;
  std::vector<time_point> finished(threads);
  try {
    for (std::size_t i = 0; i < threads; ++i) {
      running.emplace_back([&loads, &finished, end, i] {
        loads[i]->run(end);
        finished[i] = clock_type::now();
      });
    }
  } catch (const std::system_error& error) {
    for (auto& thread : running) thread.join();  // they end by -d/-n like any run
    return std::string("cannot start a thread: ") + error.what();
  }
  for (auto& thread : running) thread.join();

  bench_result result;
  result.mode = options.mode;
  result.connections = options.connections;
  result.threads = options.threads;
  const auto last = *std::max_element(finished.begin(), finished.end());
  result.duration_s = std::chrono::duration<double>(last - started).count();
  for (const auto& load : loads) {
    const auto& part = load->result();
    result.requests += part.requests;
    result.slow_requests += part.slow_requests;
    for (std::size_t k = 0; k < bench_error_count; ++k) result.errors[k] += part.errors[k];
    result.reconnects += part.reconnects;
    result.connect_retries += part.connect_retries;
    result.unfinished += part.unfinished;
    result.latency.merge(part.latency);
    result.fast_latency.merge(part.fast_latency);
    result.slow_latency.merge(part.slow_latency);
  }
  return result;
}

}  // namespace prefork
