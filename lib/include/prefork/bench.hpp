// prefork-bench, the load generator behind scripts/bench: a fixed-bucket latency histogram,
// a minimal incremental HTTP/1.x response scanner, and an epoll client that drives many
// non-blocking connections per thread with prebuilt requests and no allocation per request.
#pragma once

#include "prefork/error.hpp"

#include <boost/system/result.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace prefork {

/// Latencies in nanoseconds in fixed log-linear buckets (HdrHistogram's layout): exact
/// below 256 ns, then 128 buckets per power of two, so a reported value is at most 1/128
/// (0.8 %) above the true one. Values of 2^40 ns (about 18 minutes) and more share the last
/// bucket; max() stays exact. Recording never allocates (the buckets are allocated once).
class latency_histogram {
 public:
  static constexpr std::size_t linear_buckets = 256;
  static constexpr std::size_t buckets_per_octave = 128;
  static constexpr unsigned highest_octave = 39;  // [2^39, 2^40) is the last octave
  static constexpr std::size_t bucket_count = linear_buckets + (highest_octave - 7) * buckets_per_octave;

  latency_histogram();

  /// The bucket that holds `nanoseconds` (the last one for values beyond the range).
  static std::size_t bucket_index(std::uint64_t nanoseconds) noexcept;
  /// The largest value that falls into bucket `index` (< bucket_count); the last bucket
  /// is open-ended (UINT64_MAX).
  static std::uint64_t bucket_upper_bound(std::size_t index) noexcept;

  /// Counts one value.
  void record(std::uint64_t nanoseconds) noexcept;
  /// Adds every count of `other` to this histogram.
  void merge(const latency_histogram& other) noexcept;
  /// Forgets every value.
  void reset() noexcept;

  std::uint64_t count() const noexcept { return count_; }
  /// The largest value recorded (exact), 0 when empty.
  std::uint64_t max() const noexcept { return max_; }
  /// The mean of the recorded values (exact), 0 when empty.
  double mean() const noexcept;
  /// The smallest bucket bound v such that at least `fraction` (0..1, clamped) of the values
  /// are <= v, capped at max(); 0 when empty.
  std::uint64_t percentile(double fraction) const noexcept;

 private:
  std::vector<std::uint64_t> buckets_;
  std::uint64_t count_ = 0;
  std::uint64_t max_ = 0;
  long double sum_ = 0;
};

/// Reads one HTTP/1.x response incrementally, byte by byte, with no buffer of its own: the
/// status line, the headers it needs (Content-Length, Connection, Transfer-Encoding), and a
/// body delimited by Content-Length, chunked encoding or the close of the connection.
class http_response_scanner {
 public:
  enum class scan_state { need_more, complete, malformed };
  enum class reuse { keep_alive, close };
  struct scan_result {
    scan_state state = scan_state::need_more;
    std::size_t consumed = 0;  // bytes of `data` that belong to this response
  };

  /// The limit on the status line plus headers; beyond it a response is malformed.
  static constexpr std::size_t max_header_bytes = 65536;

  /// Forgets the current response; the scanner is ready for the next one.
  void reset() noexcept;
  /// Consumes bytes of the response. Stops at the end of the response (`complete`; bytes
  /// after it are not consumed) or at the first byte that is not HTTP (`malformed`, see
  /// error()). Feeding after complete or malformed consumes nothing.
  scan_result feed(std::string_view data) noexcept;
  /// The peer closed the connection: completes a response whose body runs to the close;
  /// anything else unfinished stays `need_more` (a response cut short).
  scan_state finish_at_eof() noexcept;

  scan_state state() const noexcept { return state_; }
  /// The status code, once the status line is read (0 before).
  unsigned status_code() const noexcept { return status_code_; }
  /// Whether the connection may carry another request after this response (HTTP/1.1
  /// without `Connection: close`, HTTP/1.0 with `Connection: keep-alive`, and the body not
  /// delimited by the close).
  reuse connection_reuse() const noexcept;
  /// Body bytes seen so far (chunk payloads only, for chunked bodies).
  std::uint64_t body_bytes() const noexcept { return body_bytes_; }
  /// Why the response is malformed (a static string), or "" when it is not.
  const char* error() const noexcept { return error_; }

 private:
  enum class phase {
    status_line,
    header_name,
    header_value,
    header_line_end,
    body_length,
    body_until_close,
    chunk_size,
    chunk_extension,
    chunk_size_end,
    chunk_data,
    chunk_data_cr,
    chunk_data_lf,
    trailer_line_start,
    trailer_line,
    trailer_end,
    done,
    failed
  };
  enum class header { other, content_length, connection, transfer_encoding };
  enum class body_framing { none, length, chunked, until_close };

  scan_state fail(const char* why) noexcept;
  bool finish_status_line() noexcept;
  bool finish_header() noexcept;
  scan_state finish_headers() noexcept;

  phase phase_ = phase::status_line;
  scan_state state_ = scan_state::need_more;
  const char* error_ = "";
  std::size_t header_bytes_ = 0;
  std::array<char, 24> line_{};  // the start of the status line, or a header name
  std::size_t line_size_ = 0;
  std::array<char, 48> value_{};  // the start of an interesting header's value
  std::size_t value_size_ = 0;
  header current_header_ = header::other;
  unsigned status_code_ = 0;
  bool http_1_0_ = false;
  bool connection_close_ = false;
  bool connection_keep_alive_ = false;
  bool chunked_ = false;
  std::optional<std::uint64_t> content_length_;
  body_framing framing_ = body_framing::none;
  std::uint64_t remaining_ = 0;  // of the body or of the current chunk
  unsigned chunk_size_digits_ = 0;
  std::uint64_t body_bytes_ = 0;
};

/// How prefork-bench uses connections.
enum class bench_mode {
  close,       // a new connection for every request (`Connection: close`)
  keep_alive,  // requests reuse their connection; reconnect only when the server closes
};

/// Every kind of failed request prefork-bench counts.
enum class bench_error {
  connect_refused,      // ECONNREFUSED, or no socket file (ENOENT)
  reset,                // ECONNRESET or EPIPE
  eof_before_response,  // the connection closed before a whole response
  timeout,              // no whole response within --timeout
  bad_status,           // a whole response with another status than expected
  malformed,            // bytes that are not an HTTP response, or bytes after it
  other,                // any other socket error (EADDRNOTAVAIL, EMFILE, ...)
};
inline constexpr std::size_t bench_error_count = 7;

/// The JSON key of an error kind ("connect_refused", "reset", ...).
const char* to_string(bench_error kind) noexcept;

/// `--mix PATH:K/N`: K requests of every N go to PATH (the slow ones).
struct bench_mix {
  std::string path;
  std::uint32_t numerator = 1;
  std::uint32_t denominator = 50;
};

/// What prefork-bench does; parse_bench_command_line checks the combinations.
struct bench_options {
  enum class target_kind { unix_path, tcp };
  target_kind target = target_kind::unix_path;
  std::string unix_path;  // --unix PATH
  std::string tcp_host;   // --tcp HOST:PORT (numeric or resolvable host)
  std::uint16_t tcp_port = 0;
  int connections = 64;                   // -c
  std::optional<double> duration_s;       // -d; with -n, whichever ends first
  std::optional<std::uint64_t> requests;  // -n: requests started, over all threads
  bench_mode mode = bench_mode::keep_alive;
  std::string path = "/";  // --path: the fast requests
  std::optional<bench_mix> mix;
  double timeout_s = 5;  // --timeout: per request, connect included
  int threads = 1;       // --threads: each with its own epoll and share of connections
  unsigned expected_status = 200;
  std::string host_header = "localhost";
};

/// The outcome of a command line: help, or options to run.
struct bench_command {
  bool show_help = false;
  bench_options options;
};

/// Parses `prefork-bench` arguments (argv[0] is the program name). Errors (exit 2) name the
/// option and why: no target or two, neither -d nor -n, a count < 1, a bad --mix, an
/// unknown option.
prefork::result<bench_command> parse_bench_command_line(int argc, const char* const* argv);

/// The help text of prefork-bench.
std::string bench_usage_text(std::string_view program_name);

/// Counters and histograms of a run (latencies in nanoseconds).
struct bench_result {
  bench_mode mode = bench_mode::keep_alive;
  int connections = 0;
  int threads = 0;
  double duration_s = 0;
  std::uint64_t requests = 0;       // whole responses with the expected status
  std::uint64_t slow_requests = 0;  // of which to the --mix path
  std::array<std::uint64_t, bench_error_count> errors{};
  std::uint64_t reconnects = 0;       // keep-alive connections the server closed cleanly
  std::uint64_t connect_retries = 0;  // EAGAIN on connect (Unix listen backlog full)
  std::uint64_t unfinished = 0;       // requests in flight when -d ran out (not counted)
  latency_histogram latency;
  latency_histogram fast_latency;
  latency_histogram slow_latency;

  std::uint64_t total_errors() const noexcept;
};

/// Runs the load described by `options` (already checked by parse_bench_command_line) and
/// returns the merged results. Returns an error for what stops the run from starting: an
/// unresolvable host, an epoll or thread that cannot be created. Failed requests are counted,
/// never returned as errors. Blocks for -d seconds or until -n requests are done.
boost::system::result<bench_result, std::string> run_bench(const bench_options& options);

/// One line of JSON (no newline): mode, connections, threads, duration_s, requests,
/// slow_requests, errors {kind: count, total}, reconnects, connect_retries, unfinished, rps,
/// and latency_us / fast_latency_us / slow_latency_us, each {count, mean, p50, p90, p99,
/// max} in microseconds.
std::string bench_result_json(const bench_result& result);

/// The whole prefork-bench program: prints the JSON line on stdout; returns 0 after a run
/// (failed requests are in the JSON), 2 on a usage error, 1 if the run cannot start.
int bench_main(int argc, const char* const* argv);

}  // namespace prefork
