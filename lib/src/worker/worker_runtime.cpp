#include "worker/worker_runtime.hpp"

#include "channel/channel.hpp"
#include "channel/worker_message.hpp"
#include "core/signal_reader.hpp"
#include "prefork/connection.hpp"
#include "prefork/log.hpp"
#include "prefork/worker_context.hpp"
#include "worker/worker_drain.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <deque>
#include <netinet/in.h>
#include <string>
#include <sys/socket.h>
#include <unistd.h>

namespace prefork::detail {

namespace asio = boost::asio;

namespace {

struct handed_back {
  int fd;
  std::uint32_t listener_index;
};

/// The worker's state; lives on run_worker's stack until _exit.
class worker_runtime {
 public:
  worker_runtime(asio::io_context& io, const worker_launch& launch)
      : io_(io),
        launch_(launch),
        context_(io.get_executor(), *launch.settings, launch.id, launch.generation),
        channel_(io, launch.channel_fd),
        receive_buffer_(max_frame_bytes),
        write_wait_armed_(false) {}

  asio::io_context& io() { return io_; }
  worker_context& context() { return context_; }
  asio::posix::stream_descriptor& channel() { return channel_; }

  std::uint64_t open_connections() const { return received_ - closed_; }

  void start() {
    if (launch_.application->on_worker_start) launch_.application->on_worker_start(context_);
    worker_message ready;
    ready.kind = worker_message_kind::ready;
    ready.id = launch_.id;
    ready.generation = launch_.generation;
    ready.pid = ::getpid();
    queue_control(encode_worker_message(ready));
  }

  /// Reads every frame that is ready; returns false when the channel is gone.
  bool drain_channel() {
    bool received_any = false;
    for (;;) {
      received_frame frame;
      auto ec = receive_frame(channel_.native_handle(), receive_buffer_, frame);
      if (ec == asio::error::would_block) break;
      if (ec == errc::channel_closed) return false;
      if (ec) {
        log_error("channel receive failed", {{"error", ec.message()}});
        if (ec == errc::frame_truncated && frame.type == frame_type::handoff && frame.lost_fds > 0) {
          // Out of descriptors: these connections are gone, but they must be acknowledged
          // (as received and closed), or the master keeps its copies open forever.
          received_ += frame.lost_fds;
          closed_ += frame.lost_fds;
          received_any = true;
        }
        if (ec != errc::frame_malformed && ec != errc::frame_truncated) return false;
        continue;
      }
      if (frame.type == frame_type::handoff) {
        for (std::size_t i = 0; i < frame.fd_count; ++i) serve(frame.fds[i], read_listener_index(frame.payload, i));
        received_any = true;
      } else if (frame.type == frame_type::control) {
        std::string_view text(reinterpret_cast<const char*>(frame.payload.data()), frame.payload.size());
        auto message = decode_worker_message(text);
        if (message && message->kind == worker_message_kind::reopen_logs) {
          if (auto reopen_error = reopen_logs())
            log_error("cannot reopen log file", {{"error", reopen_error.message()}});
        } else if (message && message->kind == worker_message_kind::drain_without_handback) {
          begin_drain(worker_context::idle_policy::serve_last);
        } else {
          log_warning("unexpected control message from master", {{"message", text}});
        }
      } else {
        frame.close_descriptors();
        log_warning("unexpected frame from master", {{"type", static_cast<int>(frame.type)}});
      }
    }
    // Acknowledge before reading any of them: the master may close its copies now.
    if (received_any) send_progress();
    return true;
  }

  void serve(int fd, std::uint32_t listener_index) {
    ++received_;
    int family = listener_index < launch_.listener_families.size() ? launch_.listener_families[listener_index] : 0;
    if (family == 0) {
      socklen_t length = sizeof family;
      if (::getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &family, &length) != 0) family = AF_UNIX;
    }
    // Served only once the master has our acknowledgement (flush): until then it may
    // hand this descriptor to another worker if we die, so we must not read from it.
    // Not registered with the reactor yet: the handler does it if it has to wait.
    unacknowledged_.emplace_back(fd, asio::generic::stream_protocol(family, family == AF_UNIX ? 0 : IPPROTO_TCP),
                                 io_.get_executor(), listener_index, context_);
  }

  void start_acknowledged() {
    for (auto& conn : unacknowledged_)
      asio::co_spawn(io_, launch_.application->serve(std::move(conn)), [this](std::exception_ptr error) {
        if (error) {
          try {
            std::rethrow_exception(error);
          } catch (const std::exception& e) {
            log_error("connection handler failed", {{"error", e.what()}});
          }
        }
        on_connection_closed();
      });
    unacknowledged_.clear();
  }

  void on_connection_closed() {
    ++closed_;
    schedule_progress();
    if (context_.draining()) asio::post(io_, [this] { exit_if_drained(); });
  }

  /// Close reports ride on the next acknowledgement; alone, they wait at most
  /// close_report_delay. The master's view of open connections (least-connections,
  /// worker_connections) lags by that much at worst, but under load a close costs no
  /// frame (and no master wake-up) of its own.
  void schedule_progress() {
    if (progress_scheduled_) return;
    progress_scheduled_ = true;
    close_report_timer_.expires_after(close_report_delay);
    close_report_timer_.async_wait([this](boost::system::error_code) {
      progress_scheduled_ = false;
      if (closed_ != reported_closed_) send_progress();
    });
  }

  void send_progress() {
    progress_dirty_ = true;
    flush();
  }

  void queue_control(std::string message) {
    control_outbox_.push_back(std::move(message));
    flush();
  }

  void send_heartbeat() {
    worker_message beat;
    beat.kind = worker_message_kind::heartbeat;
    beat.open = open_connections();
    beat.served = context_.requests();
    std::string text = encode_worker_message(beat);
    // A heartbeat that cannot go out now is dropped; the next one follows.
    if (control_outbox_.empty())
      (void)send_frame(channel_.native_handle(), frame_type::control, std::as_bytes(std::span(text)));
  }

  /// Sends queued control messages, then handed-back connections, then the latest
  /// cumulative counters.
  void flush() {
    while (!control_outbox_.empty()) {
      const std::string& text = control_outbox_.front();
      auto ec = send_frame(channel_.native_handle(), frame_type::control, std::as_bytes(std::span(text)));
      if (ec == asio::error::would_block) return arm_write_wait();
      if (ec) return;  // the master is gone; channel EOF ends us
      control_outbox_.pop_front();
    }
    while (!handbacks_.empty()) {
      std::size_t count = std::min(handbacks_.size(), max_fds_per_frame);
      std::array<std::uint32_t, max_fds_per_frame> indexes;
      std::array<int, max_fds_per_frame> fds;
      for (std::size_t i = 0; i < count; ++i) {
        indexes[i] = handbacks_[i].listener_index;
        fds[i] = handbacks_[i].fd;
      }
      auto ec = send_frame(channel_.native_handle(), frame_type::handback,
                           std::as_bytes(std::span(indexes.data(), count)), std::span(fds.data(), count));
      if (ec == asio::error::would_block) return arm_write_wait();
      if (ec) log_error("cannot hand connections back", {{"count", count}, {"error", ec.message()}});
      // Sent (the master has its own copies now) or failed: ours are closed either way.
      for (std::size_t i = 0; i < count; ++i) ::close(fds[i]);
      handbacks_.erase(handbacks_.begin(), handbacks_.begin() + static_cast<std::ptrdiff_t>(count));
    }
    if (!progress_dirty_) return;
    progress_counters counters{received_, closed_, context_.requests()};
    auto ec = send_frame(channel_.native_handle(), frame_type::progress, as_payload(counters));
    if (ec == asio::error::would_block) return arm_write_wait();
    progress_dirty_ = false;
    reported_closed_ = counters.closed;
    start_acknowledged();
    if (context_.draining()) asio::post(io_, [this] { exit_if_drained(); });
  }

  void arm_write_wait() {
    if (write_wait_armed_) return;
    write_wait_armed_ = true;
    channel_.async_wait(asio::posix::stream_descriptor::wait_write, [this](boost::system::error_code ec) {
      write_wait_armed_ = false;
      if (!ec) flush();
    });
  }

  void begin_drain(worker_context::idle_policy policy) {
    if (context_.draining()) return;
    log_info("worker draining", {{"open", open_connections()}});
    // Idle keep-alive connections go back to the master, which gives them to another
    // worker: their clients never see a reset (SPEC 2, reload).
    worker_drain::begin(context_, policy, [this](int fd, std::uint32_t listener_index) {
      handbacks_.push_back({fd, listener_index});
    });
    worker_message draining;
    draining.kind = worker_message_kind::draining;
    queue_control(encode_worker_message(draining));
    exit_if_drained();
  }

  void exit_if_drained() {
    if (!context_.draining() || open_connections() != 0) return;
    if (!handbacks_.empty() || !control_outbox_.empty()) {
      // Send what is left first; flush() calls back here once the counters went out.
      progress_dirty_ = true;
      return flush();
    }
    // A frame sent just before our TERM may still sit in the channel: serve it first.
    if (!drain_channel()) finish(0);
    if (open_connections() == 0) finish(0);
  }

  [[noreturn]] void finish(int status) {
    if (launch_.application->on_worker_stop) launch_.application->on_worker_stop(context_);
    progress_dirty_ = true;
    flush();
    log_info("worker exiting", {{"served", context_.requests()}});
    ::_exit(status);
  }

  std::chrono::steady_clock::duration heartbeat_interval() const {
    auto interval = launch_.settings->timeout / 4;
    return std::clamp<std::chrono::steady_clock::duration>(interval, std::chrono::milliseconds(50),
                                                           std::chrono::seconds(1));
  }

 private:
  asio::io_context& io_;
  const worker_launch& launch_;
  worker_context context_;
  asio::posix::stream_descriptor channel_;
  std::vector<std::byte> receive_buffer_;
  std::deque<std::string> control_outbox_;
  std::vector<handed_back> handbacks_;
  std::vector<connection> unacknowledged_;  // received, acknowledgement not sent yet
  std::uint64_t received_ = 0;
  std::uint64_t closed_ = 0;
  bool progress_dirty_ = false;
  bool progress_scheduled_ = false;
  bool write_wait_armed_;
  std::uint64_t reported_closed_ = 0;  // `closed` in the last progress frame sent
  static constexpr std::chrono::milliseconds close_report_delay{1};
  asio::steady_timer close_report_timer_{io_};
};

asio::awaitable<void> run_channel_reader(worker_runtime* runtime) {
  for (;;) {
    auto [ec] = co_await runtime->channel().async_wait(asio::posix::stream_descriptor::wait_read,
                                                       asio::as_tuple(asio::use_awaitable));
    if (ec || !runtime->drain_channel()) {
      // Channel EOF: the master is gone, and nobody could receive our counters or hand
      // us more work. Exit now (PR_SET_PDEATHSIG usually got here first).
      log_warning("master went away; worker exiting", {{"open", runtime->open_connections()}});
      ::_exit(0);
    }
  }
}

asio::awaitable<void> run_heartbeat(worker_runtime* runtime) {
  asio::steady_timer timer(runtime->io());
  for (;;) {
    runtime->send_heartbeat();
    timer.expires_after(runtime->heartbeat_interval());
    co_await timer.async_wait(asio::use_awaitable);
  }
}

asio::awaitable<void> run_signal_loop(worker_runtime* runtime) {
  signal_reader signals(runtime->io().get_executor(), handled_signals());
  asio::steady_timer graceful_deadline(runtime->io());
  for (;;) {
    int sig = co_await signals.next();
    if (sig == SIGTERM) {
      runtime->begin_drain(worker_context::idle_policy::hand_back);
      graceful_deadline.expires_after(runtime->context().settings().graceful_timeout);
      graceful_deadline.async_wait([runtime](boost::system::error_code ec) {
        if (ec) return;
        log_warning("graceful timeout: worker exits with open connections", {{"open", runtime->open_connections()}});
        runtime->finish(0);
      });
    } else if (sig == SIGINT || sig == SIGQUIT) {
      runtime->finish(0);
    } else if (sig == 0) {
      co_return;
    }
    // HUP, TTIN, TTOU, USR1, USR2 are the master's business.
  }
}

void rethrow_fatal(std::exception_ptr error) {
  if (error) std::rethrow_exception(error);
}

}  // namespace

void run_worker(const worker_launch& launch) {
  try {
    // Fresh io_context for this process; concurrency hint 1: one thread, no locking.
    asio::io_context io(1);
    worker_runtime runtime(io, launch);
    runtime.start();
    asio::co_spawn(io, run_channel_reader(&runtime), rethrow_fatal);
    asio::co_spawn(io, run_heartbeat(&runtime), rethrow_fatal);
    asio::co_spawn(io, run_signal_loop(&runtime), rethrow_fatal);
    io.run();
    ::_exit(0);
  } catch (const std::exception& e) {
    log_fatal("worker failed", {{"error", e.what()}});
    ::_exit(1);
  }
}

}  // namespace prefork::detail
