#include "prefork/bench.hpp"

#include <algorithm>
#include <array>
#include <cstdio>
#include <iostream>
#include <string>
#include <utility>

namespace prefork {
namespace {

// Appends "key":value with the number written plainly (Boost.JSON would write 3.001E0).
void append_number(std::string& out, std::string_view key, double value, int decimals) {
  char text[64];
  const int size = std::snprintf(text, sizeof(text), "%.*f", decimals, value);
  out.append("\"").append(key).append("\":").append(text, static_cast<std::size_t>(std::max(size, 0)));
}

void append_count(std::string& out, std::string_view key, std::uint64_t value) {
  out.append("\"").append(key).append("\":").append(std::to_string(value));
}

// {"count":..,"mean":..,"p50":..,"p90":..,"p99":..,"max":..} in microseconds, one decimal.
void append_latency(std::string& out, std::string_view key, const latency_histogram& histogram) {
  const auto us = [](double nanoseconds) { return nanoseconds / 1000.0; };
  out.append("\"").append(key).append("\":{");
  append_count(out, "count", histogram.count());
  out += ',';
  append_number(out, "mean", us(histogram.mean()), 1);
  constexpr std::array<std::pair<const char*, double>, 3> percentiles{{{"p50", 0.50}, {"p90", 0.90}, {"p99", 0.99}}};
  for (const auto& [name, fraction] : percentiles) {
    out += ',';
    append_number(out, name, us(static_cast<double>(histogram.percentile(fraction))), 1);
  }
  out += ',';
  append_number(out, "max", us(static_cast<double>(histogram.max())), 1);
  out += '}';
}

}  // namespace

const char* to_string(bench_error kind) noexcept {
  switch (kind) {
    case bench_error::connect_refused: return "connect_refused";
    case bench_error::reset: return "reset";
    case bench_error::eof_before_response: return "eof_before_response";
    case bench_error::timeout: return "timeout";
    case bench_error::bad_status: return "bad_status";
    case bench_error::malformed: return "malformed";
    case bench_error::other: return "other";
  }
  return "unknown";
}

std::string bench_result_json(const bench_result& result) {
  const double rps = result.duration_s > 0 ? static_cast<double>(result.requests) / result.duration_s : 0.0;
  std::string out = "{\"mode\":";
  out += result.mode == bench_mode::close ? "\"close\"," : "\"keepalive\",";
  append_count(out, "connections", static_cast<std::uint64_t>(result.connections));
  out += ',';
  append_count(out, "threads", static_cast<std::uint64_t>(result.threads));
  out += ',';
  append_number(out, "duration_s", result.duration_s, 3);
  out += ',';
  append_count(out, "requests", result.requests);
  out += ',';
  append_count(out, "slow_requests", result.slow_requests);
  out += ",\"errors\":{";
  for (std::size_t i = 0; i < bench_error_count; ++i) {
    append_count(out, to_string(static_cast<bench_error>(i)), result.errors[i]);
    out += ',';
  }
  append_count(out, "total", result.total_errors());
  out += "},";
  append_count(out, "reconnects", result.reconnects);
  out += ',';
  append_count(out, "connect_retries", result.connect_retries);
  out += ',';
  append_count(out, "unfinished", result.unfinished);
  out += ',';
  append_number(out, "rps", rps, 1);
  out += ',';
  append_latency(out, "latency_us", result.latency);
  out += ',';
  append_latency(out, "fast_latency_us", result.fast_latency);
  out += ',';
  append_latency(out, "slow_latency_us", result.slow_latency);
  out += '}';
  return out;
}

int bench_main(int argc, const char* const* argv) {
  const std::string program = argc > 0 ? argv[0] : "prefork-bench";
  auto command = parse_bench_command_line(argc, argv);
  if (!command) {
    std::cerr << program << ": " << command.error().message << "\n"
              << "Try '" << program << " --help'.\n";
    return 2;
  }
  if (command->show_help) {
    std::cout << bench_usage_text(program);
    return 0;
  }
  auto result = run_bench(command->options);
  if (!result) {
    std::cerr << program << ": " << result.error() << "\n";
    return 1;
  }
  std::cout << bench_result_json(*result) << std::endl;
  return 0;
}

}  // namespace prefork
