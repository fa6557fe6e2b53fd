// The event loop of one load thread: epoll edges, non-blocking connect, send and recv,
// per-request deadlines and pauses, and the counters of the thread's result.
#include "bench/load_thread.hpp"

#include "prefork/socket_connect.hpp"

#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cstring>
#include <memory>

namespace prefork::detail::bench {
namespace {

using namespace std::chrono_literals;

constexpr std::size_t read_buffer_bytes = 64 * 1024;
constexpr int max_events = 256;
// After a refused connect (no listener): a client must not spin against a closed socket.
constexpr auto refused_pause = 10ms;
// After EAGAIN from a Unix connect (the listen backlog is full): retry the same request soon.
constexpr auto backlog_full_pause = 1ms;

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

}  // namespace

load_thread::load_thread(const bench_options& options, const target_address& target, std::string_view fast_request,
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

load_thread::~load_thread() {
  for (auto& slot : slots_) close_connection(slot);
  if (epoll_fd_ >= 0) ::close(epoll_fd_);
}

boost::system::result<void, std::string> load_thread::open() {
  epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
  if (epoll_fd_ < 0) return std::string("epoll_create1: ") + std::strerror(errno);
  return {};
}

void load_thread::run(time_point end) {
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

void load_thread::start_request(connection_slot& slot) {
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

void load_thread::open_connection(connection_slot& slot) {
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

void load_thread::on_event(connection_slot& slot, std::uint32_t events) {
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

void load_thread::write_request(connection_slot& slot) {
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

void load_thread::read_response(connection_slot& slot) {
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

void load_thread::complete(connection_slot& slot, http_response_scanner::reuse reuse) {
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

void load_thread::fail(connection_slot& slot, bench_error kind, after_failure then) {
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

void load_thread::pause(connection_slot& slot, after_pause then) {
  slot.phase = slot_phase::paused;
  slot.resume_with = then;
  const bool retry = then == after_pause::retry_connect;
  slot.resume_at =
      clock_type::now() + (retry ? clock_type::duration(backlog_full_pause) : clock_type::duration(refused_pause));
  (retry ? short_pauses_ : long_pauses_).push_back(slot);
}

void load_thread::expire(time_point now) {
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

void load_thread::close_connection(connection_slot& slot) noexcept {
  if (slot.fd >= 0) ::close(slot.fd);  // also leaves the epoll set
  slot.fd = -1;
  slot.watching_writable = false;
  slot.phase = slot_phase::idle;
}

}  // namespace prefork::detail::bench
