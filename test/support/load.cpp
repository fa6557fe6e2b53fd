#include "support/load.hpp"

#include <boost/asio/error.hpp>
#include <boost/beast/http/error.hpp>

#include <sstream>

namespace prefork::test_support {

namespace asio = boost::asio;
namespace http = boost::beast::http;
using boost::system::error_code;
using clock_type = std::chrono::steady_clock;

const char* to_string(failure_kind kind) noexcept {
  switch (kind) {
    case failure_kind::connect_refused: return "connect_refused";
    case failure_kind::reset: return "reset";
    case failure_kind::eof_before_response: return "eof_before_response";
    case failure_kind::timeout: return "timeout";
    case failure_kind::bad_status: return "bad_status";
    case failure_kind::other: return "other";
  }
  return "?";
}

failure_kind classify(const error_code& ec) noexcept {
  if (ec == asio::error::timed_out) return failure_kind::timeout;
  if (ec == asio::error::connection_refused || ec == boost::system::errc::no_such_file_or_directory) {
    return failure_kind::connect_refused;
  }
  if (ec == asio::error::connection_reset || ec == asio::error::broken_pipe) return failure_kind::reset;
  if (ec == asio::error::eof || ec == http::error::end_of_stream || ec == http::error::partial_message) {
    return failure_kind::eof_before_response;
  }
  return failure_kind::other;
}

std::uint64_t load_result::total_failures() const noexcept {
  std::uint64_t total = 0;
  for (auto count : failures) total += count;
  return total;
}

std::string load_result::summary() const {
  std::ostringstream text;
  text << successes << " ok, " << total_failures() << " failed";
  bool first = true;
  for (std::size_t i = 0; i < failure_kind_count; ++i) {
    if (failures[i] == 0) continue;
    text << (first ? " (" : ", ") << to_string(static_cast<failure_kind>(i)) << " " << failures[i];
    first = false;
  }
  if (!first) text << ")";
  text << ", " << reconnects << " keep-alive reconnects";
  if (!error_samples.empty()) {
    text << "; first errors:";
    for (const auto& sample : error_samples) text << "\n  " << sample;
  }
  return text.str();
}

load_generator::load_generator(load_options options) : options_(std::move(options)) {
  threads_.reserve(static_cast<std::size_t>(options_.clients));
  try {
    for (int i = 0; i < options_.clients; ++i) threads_.emplace_back([this] { run_client(); });
  } catch (...) {
    stop();  // joins the threads already started
    throw;
  }
}

load_generator::~load_generator() { stop(); }

load_result load_generator::snapshot() const {
  load_result result;
  result.successes = successes_.load();
  for (std::size_t i = 0; i < failure_kind_count; ++i) result.failures[i] = failures_[i].load();
  result.reconnects = reconnects_.load();
  std::lock_guard lock(samples_mutex_);
  result.error_samples = samples_;
  return result;
}

bool load_generator::wait_successes(std::uint64_t count, std::chrono::milliseconds timeout) const {
  auto deadline = clock_type::now() + timeout;
  while (successes_.load() < count) {
    if (clock_type::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return true;
}

load_result load_generator::stop() {
  stopping_ = true;
  for (auto& thread : threads_) {
    if (thread.joinable()) thread.join();
  }
  return snapshot();
}

void load_generator::record_failure(failure_kind kind, const std::string& text) {
  ++failures_[static_cast<std::size_t>(kind)];
  std::lock_guard lock(samples_mutex_);
  if (samples_.size() < options_.max_error_samples) samples_.push_back(std::string(to_string(kind)) + ": " + text);
}

void load_generator::run_client() {
  http_connection connection;
  auto connection_mode =
      options_.mode == load_mode::keep_alive ? connection_header::keep_alive : connection_header::close;
  while (!stopping_.load()) {
    bool reused = connection.is_open();
    if (!reused) {
      if (auto ec = connection.connect(options_.target, options_.request_timeout)) {
        record_failure(classify(ec), "connect " + options_.target.to_string() + ": " + ec.message());
        std::this_thread::sleep_for(options_.retry_pause);
        continue;
      }
    }
    auto response = connection.request("GET", options_.path, options_.request_timeout, connection_mode);
    if (!response) {
      connection.close();
      auto ec = response.error();
      record_failure(classify(ec), std::string(reused ? "reused" : "new") + " connection, GET " + options_.path + ": " +
                                       ec.message());
      continue;
    }
    if (response->status != options_.expected_status ||
        (options_.expected_body && response->body != *options_.expected_body)) {
      connection.close();
      record_failure(failure_kind::bad_status, "GET " + options_.path + ": status " + std::to_string(response->status) +
                                                   ", body \"" + response->body.substr(0, 80) + "\"");
      continue;
    }
    ++successes_;
    if (options_.mode == load_mode::connection_per_request) {
      connection.close();
    } else if (!response->keep_alive) {
      connection.close();
      ++reconnects_;
    }
  }
}

}  // namespace prefork::test_support
