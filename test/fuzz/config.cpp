// Fuzzes the config loader: parse_config on the whole input and parse_bind_address on it.
// A config that parses must hold values the master can use as they are (counts in range,
// durations that can be added to a clock's now() without overflow), and must survive the
// round trip through to_json; a bind address must survive the round trip through to_string.
#include "prefork/config.hpp"
#include "prefork/bind_address.hpp"

#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

namespace {

[[noreturn]] void fail(const char* what) {
  std::fprintf(stderr, "config fuzzer: %s\n", what);
  std::abort();
}

// steady_clock and system_clock count nanoseconds in an int64: a duration must fit in one
// with room for now() (a century is plenty; any config value beyond it is a typo).
void check_duration(std::chrono::milliseconds value, const char* what) {
  constexpr auto century = std::chrono::milliseconds(std::int64_t{100} * 366 * 24 * 3600 * 1000);
  if (value.count() < 0 || value > century) {
    std::fprintf(stderr, "config fuzzer: %s = %lld ms\n", what, static_cast<long long>(value.count()));
    fail("a duration the clocks cannot hold was accepted");
  }
}

void check_config(const prefork::config& cfg) {
  if (cfg.workers < 1 || cfg.workers > 1024) fail("workers out of range");
  if (cfg.worker_connections < 1 || cfg.backlog < 1) fail("a count below 1 was accepted");
  if (cfg.bind.empty()) fail("no listener");
  if (cfg.socket_mode_bits > 0777) fail("socket_mode beyond 0777");
  if (cfg.http.max_header_bytes < 256) fail("max_header_bytes below 256");
  if (cfg.max_requests < 0 || cfg.max_requests_jitter < 0) fail("a negative max_requests");
  check_duration(cfg.timeout, "timeout");
  check_duration(cfg.graceful_timeout, "graceful_timeout");
  check_duration(cfg.keepalive, "keepalive");
  check_duration(cfg.http.request_timeout, "http.request_timeout");
  check_duration(cfg.restart.min_uptime, "restart.min_uptime_ms");
  check_duration(cfg.restart.backoff_initial, "restart.backoff_initial_ms");
  check_duration(cfg.restart.backoff_max, "restart.backoff_max_ms");
  if (cfg.timeout.count() == 0 || cfg.http.request_timeout.count() == 0) fail("a zero timeout");
}

void check_bind_address(std::string_view text) {
  auto address = prefork::parse_bind_address(text);
  if (!address) {
    if (address.error().message.empty()) fail("a bind error without a message");
    return;
  }
  const std::string printed = prefork::to_string(*address);
  auto again = prefork::parse_bind_address(printed);
  if (!again) fail("to_string of a bind address does not parse");
  if (!(*again == *address)) fail("a bind address changed in the round trip");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  check_bind_address(text);

  auto parsed = prefork::parse_config(text);
  if (!parsed) {
    if (parsed.error().message.empty()) fail("a config error without a message");
    return 0;
  }
  check_config(*parsed);
  const std::string printed = boost::json::serialize(prefork::to_json(*parsed));
  auto again = prefork::parse_config(printed);
  if (!again) {
    std::fprintf(stderr, "config fuzzer: %s\nreparse: %s\n", printed.c_str(), again.error().message.c_str());
    fail("to_json of a config does not parse");
  }
  if (boost::json::serialize(prefork::to_json(*again)) != printed) fail("a config changed in the round trip");
  return 0;
}
