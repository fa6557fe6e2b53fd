// A load generator for integration tests: C client threads sending HTTP requests, either
// one connection per request or keep-alive, counting successes and each kind of failure.
// Every request has a deadline, so stop() returns within about one request timeout.
#pragma once

#include "support/http_client.hpp"

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace prefork::test_support {

enum class load_mode { connection_per_request, keep_alive };

/// The kinds of failure a client can see. `connect_refused` includes a missing socket
/// file; `reset` includes a broken pipe on send; `eof_before_response` is a close before a
/// whole response; `bad_status` is an unexpected status or body.
enum class failure_kind { connect_refused, reset, eof_before_response, timeout, bad_status, other };
inline constexpr std::size_t failure_kind_count = 6;

/// The name of a failure kind, for messages ("reset", "timeout", ...).
const char* to_string(failure_kind kind) noexcept;

struct load_options {
  endpoint target;
  int clients = 16;
  load_mode mode = load_mode::connection_per_request;
  std::string path = "/";
  unsigned expected_status = 200;
  std::optional<std::string> expected_body = std::string("Hello, world!\n");
  std::chrono::milliseconds request_timeout{5000};
  /// Pause after a failed connect, so that a closed listener does not make clients spin.
  std::chrono::milliseconds retry_pause{5};
  std::size_t max_error_samples = 8;
};

/// Counters at one moment.
struct load_result {
  std::uint64_t successes = 0;
  std::array<std::uint64_t, failure_kind_count> failures{};
  /// Keep-alive connections the server closed cleanly between requests (not failures).
  std::uint64_t reconnects = 0;
  std::vector<std::string> error_samples;

  std::uint64_t failed(failure_kind kind) const noexcept { return failures[static_cast<std::size_t>(kind)]; }
  std::uint64_t total_failures() const noexcept;
  /// "1234 ok, 2 failed (reset 2); samples: ...", for messages.
  std::string summary() const;
};

/// Starts `options.clients` threads at construction; stop() (or the destructor) ends them.
class load_generator {
 public:
  explicit load_generator(load_options options);
  ~load_generator();
  load_generator(const load_generator&) = delete;
  load_generator& operator=(const load_generator&) = delete;

  /// The counters so far.
  load_result snapshot() const;
  /// Polls until at least `count` successes were counted; false on timeout.
  bool wait_successes(std::uint64_t count, std::chrono::milliseconds timeout) const;
  /// Asks the clients to stop after their current request, joins them, returns the totals.
  /// Idempotent.
  load_result stop();

 private:
  void run_client();
  void record_failure(failure_kind kind, const std::string& text);

  load_options options_;
  std::atomic<bool> stopping_{false};
  std::atomic<std::uint64_t> successes_{0};
  std::array<std::atomic<std::uint64_t>, failure_kind_count> failures_{};
  std::atomic<std::uint64_t> reconnects_{0};
  mutable std::mutex samples_mutex_;
  std::vector<std::string> samples_;
  std::vector<std::thread> threads_;
};

/// Classifies an error code from http_connection into a failure kind.
failure_kind classify(const boost::system::error_code& ec) noexcept;

}  // namespace prefork::test_support
