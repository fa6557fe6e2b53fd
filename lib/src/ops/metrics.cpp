#include "ops/metrics.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <initializer_list>
#include <system_error>

namespace prefork::detail {
namespace {

constexpr std::array<std::string_view, 5> worker_states{"starting", "ready", "draining", "paused", "backoff"};

void append_number(std::string& out, std::uint64_t value) {
  std::array<char, 24> digits{};
  const auto [end, ec] = std::to_chars(digits.data(), digits.data() + digits.size(), value);
  out.append(digits.data(), end);
}

// Shortest round-trip form ("12.5", "1e-06"); the exposition format spells the specials
// NaN, +Inf and -Inf.
void append_number(std::string& out, double value) {
  if (std::isnan(value)) {
    out += "NaN";
    return;
  }
  if (std::isinf(value)) {
    out += value > 0 ? "+Inf" : "-Inf";
    return;
  }
  std::array<char, 32> digits{};
  const auto [end, ec] = std::to_chars(digits.data(), digits.data() + digits.size(), value);
  out.append(digits.data(), end);
}

void append_header(std::string& out, std::string_view name, std::string_view type, std::string_view help) {
  out += "# HELP ";
  out += name;
  out += ' ';
  out += help;  // constant texts without backslash or newline: nothing to escape
  out += "\n# TYPE ";
  out += name;
  out += ' ';
  out += type;
  out += '\n';
}

template <class Number>
void append_sample(std::string& out, std::string_view name, Number value) {
  out += name;
  out += ' ';
  append_number(out, value);
  out += '\n';
}

// A label value with \, " and newline escaped as the format requires.
void append_label_value(std::string& out, std::string_view value) {
  for (const char c : value) {
    switch (c) {
      case '\\': out += "\\\\"; break;
      case '"': out += "\\\""; break;
      case '\n': out += "\\n"; break;
      default: out += c;
    }
  }
}

void append_counter(std::string& out, std::string_view name, std::string_view help, std::uint64_t value) {
  append_header(out, name, "counter", help);
  append_sample(out, name, value);
}

void append_worker_state(std::string& out, std::string_view state, std::uint64_t count) {
  out += "prefork_workers{state=\"";
  append_label_value(out, state);
  out += "\"} ";
  append_number(out, count);
  out += '\n';
}

}  // namespace

void prometheus_histogram::record(std::chrono::nanoseconds latency) noexcept {
  if (latency.count() < 0) latency = std::chrono::nanoseconds(0);
  // First bound >= latency: Prometheus buckets are "less than or equal".
  const auto bound = std::lower_bound(upper_bounds.begin(), upper_bounds.end(), latency);
  ++counts_[static_cast<std::size_t>(bound - upper_bounds.begin())];
  ++count_;
  sum_nanoseconds_ += latency.count();
}

std::uint64_t prometheus_histogram::cumulative_count(std::size_t bucket) const noexcept {
  std::uint64_t total = 0;
  for (std::size_t i = 0; i <= bucket && i < counts_.size(); ++i) total += counts_[i];
  return total;
}

std::string render_metrics(const metrics_snapshot& snapshot) {
  std::string out;
  out.reserve(6 * 1024);

  append_counter(out, "prefork_connections_accepted_total", "Connections accepted by the master.", snapshot.accepted);
  append_counter(out, "prefork_connections_dispatched_total", "Connections handed to a worker.", snapshot.dispatched);
  append_counter(out, "prefork_connections_redispatched_total",
                 "Connections handed to another worker after theirs died before acknowledging them.",
                 snapshot.redispatched);
  append_counter(out, "prefork_connections_migrated_total",
                 "Idle keep-alive connections handed back by a draining worker and given to another.",
                 snapshot.migrated);
  append_counter(out, "prefork_connections_lost_total", "Accepted connections the master had to close unserved.",
                 snapshot.lost);
  append_counter(out, "prefork_accept_pauses_total", "Times accepting paused for lack of descriptors (EMFILE, ENFILE).",
                 snapshot.accept_pauses);
  append_counter(out, "prefork_worker_exits_total", "Worker processes that exited, for any reason.",
                 snapshot.worker_exits);
  append_counter(out, "prefork_worker_crashes_total",
                 "Worker exits the master did not ask for (a signal from outside, a nonzero status).",
                 snapshot.worker_crashes);
  append_counter(out, "prefork_worker_timeouts_total", "Workers killed for missing heartbeats.",
                 snapshot.worker_timeouts);
  append_counter(out, "prefork_worker_restarts_total", "Worker exits whose slot was given a replacement.",
                 snapshot.worker_exits);
  append_counter(out, "prefork_worker_recycled_total", "Workers retired after max_requests or on request.",
                 snapshot.worker_recycled);
  append_counter(out, "prefork_reloads_total", "Reloads (HUP or the reload command) carried out.", snapshot.reloads);
  append_counter(out, "prefork_requests_total", "Requests served, summed over all workers, dead ones included.",
                 snapshot.requests);

  append_header(out, "prefork_workers", "gauge", "Worker processes by state.");
  for (const std::string_view state : worker_states) {
    const auto found = snapshot.workers_by_state.find(state);
    append_worker_state(out, state, found == snapshot.workers_by_state.end() ? 0 : found->second);
  }
  for (const auto& [state, count] : snapshot.workers_by_state) {
    if (std::find(worker_states.begin(), worker_states.end(), state) == worker_states.end()) {
      append_worker_state(out, state, count);
    }
  }

  append_header(out, "prefork_workers_desired", "gauge", "Workers the master aims to run.");
  append_sample(out, "prefork_workers_desired", snapshot.desired_workers);
  append_header(out, "prefork_generation", "gauge", "Current worker generation (incremented by each reload).");
  append_sample(out, "prefork_generation", snapshot.generation);
  append_header(out, "prefork_uptime_seconds", "gauge", "Seconds since the master started.");
  append_sample(out, "prefork_uptime_seconds", snapshot.uptime_seconds);

  static const prometheus_histogram empty_histogram;
  const prometheus_histogram& handoff = snapshot.handoff != nullptr ? *snapshot.handoff : empty_histogram;
  append_header(out, "prefork_handoff_latency_seconds", "histogram",
                "Time from accepting a connection to handing it to a worker.");
  for (std::size_t i = 0; i <= prometheus_histogram::bucket_count; ++i) {
    out += "prefork_handoff_latency_seconds_bucket{le=\"";
    out += i < prometheus_histogram::bucket_count ? prometheus_histogram::upper_bound_labels[i] : "+Inf";
    out += "\"} ";
    append_number(out, handoff.cumulative_count(i));
    out += '\n';
  }
  append_sample(out, "prefork_handoff_latency_seconds_sum", std::chrono::duration<double>(handoff.sum()).count());
  append_sample(out, "prefork_handoff_latency_seconds_count", handoff.count());
  return out;
}

}  // namespace prefork::detail
