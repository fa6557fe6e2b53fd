#include "prefork/bench.hpp"

#include <boost/json.hpp>
#include <boost/test/unit_test.hpp>

#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

using prefork::bench_error;
using prefork::bench_mode;
using prefork::bench_options;
using prefork::http_response_scanner;
using prefork::latency_histogram;
using scan_state = http_response_scanner::scan_state;
using reuse = http_response_scanner::reuse;

namespace {

constexpr std::string_view hello_response =
    "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 14\r\n\r\n"
    "Hello, world!\n";

// Feeds `text` in pieces of `piece` bytes; returns the last state and the bytes consumed.
std::pair<scan_state, std::size_t> scan(http_response_scanner& scanner, std::string_view text,
                                        std::size_t piece = 1 << 20) {
  std::size_t consumed = 0;
  scan_state state = scan_state::need_more;
  while (consumed < text.size()) {
    const auto part = text.substr(consumed, piece);
    const auto result = scanner.feed(part);
    state = result.state;
    consumed += result.consumed;
    if (state != scan_state::need_more || result.consumed < part.size()) break;
  }
  return {state, consumed};
}

std::string scan_error(std::string_view text) {
  http_response_scanner scanner;
  const auto [state, consumed] = scan(scanner, text);
  return state == scan_state::malformed ? scanner.error() : "not malformed";
}

// A parse error's message, or "" when the command line is accepted.
std::string command_error(std::vector<const char*> arguments) {
  arguments.insert(arguments.begin(), "prefork-bench");
  auto parsed = prefork::parse_bench_command_line(static_cast<int>(arguments.size()), arguments.data());
  return parsed ? std::string() : parsed.error().message;
}

bench_options options_for(std::vector<const char*> arguments) {
  arguments.insert(arguments.begin(), "prefork-bench");
  auto parsed = prefork::parse_bench_command_line(static_cast<int>(arguments.size()), arguments.data());
  BOOST_TEST_REQUIRE(parsed.has_value(), (parsed ? "" : parsed.error().message));
  return parsed->options;
}

std::uint64_t errors_of(const prefork::bench_result& result, bench_error kind) {
  return result.errors[static_cast<std::size_t>(kind)];
}

// A small blocking HTTP server for the engine tests: a thread accepts on a Unix socket (or
// 127.0.0.1:0) and a thread per connection answers each request with what `respond` says.
// Every blocking call has a deadline, so a broken test cannot hang; the destructor stops
// and joins everything.
class test_server {
 public:
  enum class action { answer, answer_and_close, close_without_answer, never_answer };
  enum class on_data { read, close_unread };  // close_unread: close with the request unread
  struct reply {
    action what = action::answer;
    std::string bytes{hello_response};
  };
  using responder = std::function<reply(std::string_view request)>;

  test_server(int family, responder respond, on_data data = on_data::read)
      : respond_(std::move(respond)), on_data_(data) {
    listener_ = ::socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    BOOST_TEST_REQUIRE(listener_ >= 0);
    if (family == AF_UNIX) {
      static std::atomic<int> serial{0};
      path_ = (std::filesystem::temp_directory_path() /
               ("prefork-bench-test-" + std::to_string(::getpid()) + "-" + std::to_string(serial++)))
                  .string();
      ::unlink(path_.c_str());
      sockaddr_un address{};
      address.sun_family = AF_UNIX;
      std::strncpy(address.sun_path, path_.c_str(), sizeof(address.sun_path) - 1);
      BOOST_TEST_REQUIRE(::bind(listener_, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0);
    } else {
      sockaddr_in address{};
      address.sin_family = AF_INET;
      address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      BOOST_TEST_REQUIRE(::bind(listener_, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0);
      socklen_t size = sizeof(address);
      BOOST_TEST_REQUIRE(::getsockname(listener_, reinterpret_cast<sockaddr*>(&address), &size) == 0);
      port_ = ntohs(address.sin_port);
    }
    BOOST_TEST_REQUIRE(::listen(listener_, 64) == 0);
    acceptor_ = std::thread([this] { accept_loop(); });
  }

  ~test_server() {
    stopping_ = true;
    acceptor_.join();
    std::lock_guard lock(mutex_);
    for (auto& thread : connections_) thread.join();
    ::close(listener_);
    if (!path_.empty()) ::unlink(path_.c_str());
  }

  test_server(const test_server&) = delete;
  test_server& operator=(const test_server&) = delete;

  const std::string& path() const { return path_; }
  std::string tcp_address() const { return "127.0.0.1:" + std::to_string(port_); }
  int accepted() const { return accepted_; }

 private:
  // Waits up to 50 ms for `events` on `fd`; false when stopping or on error.
  bool wait_for(int fd, short events) const {
    while (!stopping_) {
      pollfd entry{fd, events, 0};
      const int ready = ::poll(&entry, 1, 50);
      if (ready > 0) return true;
      if (ready < 0) return false;
    }
    return false;
  }

  void accept_loop() {
    while (wait_for(listener_, POLLIN)) {
      const int fd = ::accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) continue;
      ++accepted_;
      std::lock_guard lock(mutex_);
      connections_.emplace_back([this, fd] { serve(fd); });
    }
  }

  void serve(int fd) {
    std::string buffer;
    char chunk[4096];
    while (true) {
      const auto end = buffer.find("\r\n\r\n");
      if (end != std::string::npos) {
        const auto request = buffer.substr(0, end + 4);
        buffer.erase(0, end + 4);
        const auto answer = respond_(request);
        if (answer.what == action::never_answer) {
          while (wait_for(fd, POLLIN) && ::recv(fd, chunk, sizeof(chunk), 0) > 0) {
          }
          break;
        }
        if (answer.what == action::close_without_answer) break;
        if (::send(fd, answer.bytes.data(), answer.bytes.size(), MSG_NOSIGNAL) < 0) break;
        if (answer.what == action::answer_and_close) break;
        if (request.find("Connection: close") != std::string::npos) break;
        continue;
      }
      if (!wait_for(fd, POLLIN)) break;
      if (on_data_ == on_data::close_unread) break;  // a Unix peer then sees ECONNRESET
      const auto received = ::recv(fd, chunk, sizeof(chunk), 0);
      if (received <= 0) break;
      buffer.append(chunk, static_cast<std::size_t>(received));
    }
    ::close(fd);
  }

  responder respond_;
  on_data on_data_;
  int listener_ = -1;
  std::string path_;
  std::uint16_t port_ = 0;
  std::atomic<bool> stopping_{false};
  std::atomic<int> accepted_{0};
  std::mutex mutex_;
  std::vector<std::thread> connections_;
  std::thread acceptor_;
};

test_server::reply answer_hello(std::string_view) { return {}; }

// A TCP port on 127.0.0.1 that nobody listens on (bound, read, closed).
std::string closed_tcp_address() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  BOOST_TEST_REQUIRE(fd >= 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t size = sizeof(address);
  const bool bound = ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0 &&
                     ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &size) == 0;
  ::close(fd);
  BOOST_TEST_REQUIRE(bound);
  return "127.0.0.1:" + std::to_string(ntohs(address.sin_port));
}

prefork::bench_result run(const bench_options& options) {
  auto result = prefork::run_bench(options);
  BOOST_TEST_REQUIRE(result.has_value(), (result ? "" : result.error()));
  return std::move(*result);
}

}  // namespace

BOOST_AUTO_TEST_SUITE(bench)

// --- latency_histogram ---------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(histogram_buckets_are_exact_then_within_one_percent) {
  for (std::uint64_t value = 0; value < 256; ++value) {
    BOOST_TEST(latency_histogram::bucket_index(value) == value);
    BOOST_TEST(latency_histogram::bucket_upper_bound(value) == value);
  }
  std::size_t previous_index = 255;
  for (std::uint64_t value = 256; value < (std::uint64_t{1} << 40); value = value * 5 / 4 + 3) {
    const auto index = latency_histogram::bucket_index(value);
    BOOST_TEST(index >= previous_index);
    BOOST_TEST(index < latency_histogram::bucket_count);
    const auto bound = latency_histogram::bucket_upper_bound(index);
    BOOST_TEST(bound >= value);
    BOOST_TEST(static_cast<double>(bound - value) <= static_cast<double>(value) / 128.0);
    BOOST_TEST(latency_histogram::bucket_index(bound) == index);
    if (index + 1 < latency_histogram::bucket_count) {
      BOOST_TEST(latency_histogram::bucket_index(bound + 1) == index + 1);
    }
    previous_index = index;
  }
  // Beyond the range: the last bucket, never out of bounds.
  BOOST_TEST(latency_histogram::bucket_index(std::uint64_t{1} << 40) == latency_histogram::bucket_count - 1);
  BOOST_TEST(latency_histogram::bucket_index(~std::uint64_t{0}) == latency_histogram::bucket_count - 1);
  BOOST_TEST(latency_histogram::bucket_upper_bound(latency_histogram::bucket_count - 1) == ~std::uint64_t{0});
}

BOOST_AUTO_TEST_CASE(histogram_percentiles) {
  latency_histogram histogram;
  BOOST_TEST(histogram.percentile(0.5) == 0u);
  BOOST_TEST(histogram.max() == 0u);
  BOOST_TEST(histogram.mean() == 0.0);

  // 1..100000 in a shuffled order: each percentile within 1/128 above the exact value.
  std::vector<std::uint64_t> values(100000);
  for (std::size_t i = 0; i < values.size(); ++i) values[i] = i + 1;
  std::shuffle(values.begin(), values.end(), std::mt19937(7));
  for (const auto value : values) histogram.record(value);
  BOOST_TEST(histogram.count() == 100000u);
  BOOST_TEST(histogram.max() == 100000u);
  BOOST_TEST(histogram.mean() == 50000.5, boost::test_tools::tolerance(1e-9));
  for (const double fraction : {0.5, 0.9, 0.99, 0.999}) {
    const auto exact = static_cast<double>(fraction * 100000);
    const auto reported = static_cast<double>(histogram.percentile(fraction));
    BOOST_TEST(reported >= exact);
    BOOST_TEST(reported <= exact * (1 + 1.0 / 128), "p" << fraction * 100 << " = " << reported);
  }
  BOOST_TEST(histogram.percentile(1.0) == 100000u);
  BOOST_TEST(histogram.percentile(2.0) == 100000u);  // clamped
  BOOST_TEST(histogram.percentile(0.0) == 1u);       // the smallest value's bucket

  // Exact ranks in the linear range: 10 values, p70 is the 7th (no floating-point slip).
  latency_histogram small;
  for (std::uint64_t value = 1; value <= 10; ++value) small.record(value * 10);
  BOOST_TEST(small.percentile(0.7) == 70u);
  BOOST_TEST(small.percentile(0.5) == 50u);
  BOOST_TEST(small.percentile(0.51) == 60u);

  // A huge value lands in the last bucket, and max stays exact.
  small.record(std::uint64_t{1} << 50);
  BOOST_TEST(small.max() == std::uint64_t{1} << 50);
  BOOST_TEST(small.percentile(1.0) == std::uint64_t{1} << 50);
}

BOOST_AUTO_TEST_CASE(histogram_merge_and_reset) {
  latency_histogram a;
  latency_histogram b;
  for (int i = 0; i < 90; ++i) a.record(1000);
  for (int i = 0; i < 10; ++i) b.record(1000000);
  a.merge(b);
  BOOST_TEST(a.count() == 100u);
  BOOST_TEST(a.max() == 1000000u);
  BOOST_TEST(a.percentile(0.90) <= 1000u * 129 / 128);
  BOOST_TEST(a.percentile(0.91) >= 1000000u);
  BOOST_TEST(a.mean() == (90 * 1000.0 + 10 * 1e6) / 100, boost::test_tools::tolerance(1e-9));
  a.reset();
  BOOST_TEST(a.count() == 0u);
  BOOST_TEST(a.max() == 0u);
  BOOST_TEST(a.percentile(0.5) == 0u);
}

// --- http_response_scanner ------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(scanner_content_length_in_any_pieces) {
  for (const std::size_t piece : {1, 2, 3, 7, 16, 1000}) {
    http_response_scanner scanner;
    const auto [state, consumed] = scan(scanner, hello_response, piece);
    BOOST_TEST((state == scan_state::complete), "piece " << piece);
    BOOST_TEST(consumed == hello_response.size());
    BOOST_TEST(scanner.status_code() == 200u);
    BOOST_TEST(scanner.body_bytes() == 14u);
    BOOST_TEST((scanner.connection_reuse() == reuse::keep_alive));
  }
}

BOOST_AUTO_TEST_CASE(scanner_stops_at_the_end_of_the_response) {
  http_response_scanner scanner;
  const std::string two = std::string(hello_response) + std::string(hello_response);
  const auto result = scanner.feed(two);
  BOOST_TEST((result.state == scan_state::complete));
  BOOST_TEST(result.consumed == hello_response.size());
  BOOST_TEST(scanner.feed("more").consumed == 0u);  // complete: nothing more is taken
  scanner.reset();
  BOOST_TEST((scanner.feed(std::string_view(two).substr(result.consumed)).state == scan_state::complete));
}

BOOST_AUTO_TEST_CASE(scanner_connection_reuse) {
  const auto reuse_of = [](std::string_view text) {
    http_response_scanner scanner;
    const auto [state, consumed] = scan(scanner, text);
    BOOST_TEST_REQUIRE((state == scan_state::complete), text);
    return scanner.connection_reuse();
  };
  BOOST_TEST((reuse_of("HTTP/1.1 200 OK\r\nconnection: Close\r\ncontent-length: 0\r\n\r\n") == reuse::close));
  BOOST_TEST(
      (reuse_of("HTTP/1.1 200 OK\r\nConnection: keep-alive, close\r\nContent-Length: 0\r\n\r\n") == reuse::close));
  BOOST_TEST((reuse_of("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n") == reuse::close));
  BOOST_TEST((reuse_of("HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 0\r\n\r\n") == reuse::keep_alive));
  BOOST_TEST((reuse_of("HTTP/1.1 204 No Content\r\n\r\n") == reuse::keep_alive));
  BOOST_TEST((reuse_of("HTTP/1.1 304 Not Modified\r\nContent-Length: 99\r\n\r\n") == reuse::keep_alive));
  BOOST_TEST((reuse_of("HTTP/1.1 200 OK\nContent-Length: 2\n\nok") == reuse::keep_alive));  // bare LF
  // A long header name and a long header value of no interest are skipped.
  BOOST_TEST((reuse_of("HTTP/1.1 200 OK\r\nX-A-Very-Long-Header-Name-Indeed: " + std::string(500, 'v') +
                       "\r\nContent-Length: 0\r\n\r\n") == reuse::keep_alive));
}

BOOST_AUTO_TEST_CASE(scanner_body_until_close) {
  http_response_scanner scanner;
  const std::string_view text = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nsome body";
  const auto [state, consumed] = scan(scanner, text, 5);
  BOOST_TEST((state == scan_state::need_more));
  BOOST_TEST(consumed == text.size());
  BOOST_TEST((scanner.finish_at_eof() == scan_state::complete));
  BOOST_TEST(scanner.body_bytes() == 9u);
  BOOST_TEST((scanner.connection_reuse() == reuse::close));

  // EOF in the headers or inside a Content-Length body is a response cut short.
  http_response_scanner cut;
  cut.feed("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc");
  BOOST_TEST((cut.finish_at_eof() == scan_state::need_more));
  http_response_scanner headers_cut;
  headers_cut.feed("HTTP/1.1 200 OK\r\nContent-Le");
  BOOST_TEST((headers_cut.finish_at_eof() == scan_state::need_more));
  http_response_scanner nothing;
  BOOST_TEST((nothing.finish_at_eof() == scan_state::need_more));
}

BOOST_AUTO_TEST_CASE(scanner_chunked) {
  const std::string_view text =
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
      "5\r\nHello\r\n9;name=value\r\n, world!\n\r\n0\r\nTrailer: x\r\n\r\n";
  for (const std::size_t piece : {1, 4, 1000}) {
    http_response_scanner scanner;
    const auto [state, consumed] = scan(scanner, text, piece);
    BOOST_TEST((state == scan_state::complete), "piece " << piece);
    BOOST_TEST(consumed == text.size());
    BOOST_TEST(scanner.body_bytes() == 14u);
    BOOST_TEST((scanner.connection_reuse() == reuse::keep_alive));
  }
  http_response_scanner no_trailer;
  BOOST_TEST((scan(no_trailer, "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n").first ==
              scan_state::complete));
}

BOOST_AUTO_TEST_CASE(scanner_malformed) {
  BOOST_TEST(scan_error("garbage\r\n\r\n") == "bad status line");
  BOOST_TEST(scan_error("HTTP/2 200 OK\r\n\r\n") == "bad status line");
  BOOST_TEST(scan_error("HTTP/1.1 20 OK\r\n\r\n") == "bad status line");
  BOOST_TEST(scan_error("HTTP/1.1 2000 OK\r\n\r\n") == "bad status line");
  BOOST_TEST(scan_error("HTTP/1.1 200 OK\r\nno colon here\r\n\r\n") == "header line without a colon");
  BOOST_TEST(scan_error("HTTP/1.1 200 OK\r\nContent-Length: 12x\r\n\r\n") == "bad Content-Length");
  BOOST_TEST(scan_error("HTTP/1.1 200 OK\r\nContent-Length: \r\n\r\n") == "bad Content-Length");
  BOOST_TEST(scan_error("HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999\r\n\r\n") == "bad Content-Length");
  BOOST_TEST(scan_error("HTTP/1.1 200 OK\r\nContent-Length: " + std::string(60, '1') + "\r\n\r\n") ==
             "Content-Length too long");
  BOOST_TEST(scan_error("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n") ==
             "two different Content-Length values");
  BOOST_TEST(scan_error("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\rX") == "CR without LF after the headers");
  BOOST_TEST(scan_error("HTTP/1.1 200 OK\r\n" + std::string(70000, 'x')) == "headers too large");
  BOOST_TEST(scan_error("HTTP/1.1 200 OK\r\nX: " + std::string(70000, 'x')) == "headers too large");
  BOOST_TEST(scan_error(std::string(70000, 'H')) == "headers too large");
  const std::string chunked = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
  BOOST_TEST(scan_error(chunked + "xyz\r\n") == "bad chunk size");
  BOOST_TEST(scan_error(chunked + "5x\r\n") == "bad chunk size");
  BOOST_TEST(scan_error(chunked + "1234567890abcdef0\r\n") == "chunk size too large");
  BOOST_TEST(scan_error(chunked + "5\rx") == "CR without LF after a chunk size");
  BOOST_TEST(scan_error(chunked + "2\r\nokX") == "chunk data without CRLF");
  BOOST_TEST(scan_error(chunked + "0\r\n\rX") == "CR without LF after the trailers");
  BOOST_TEST(scan_error(chunked + "0\r\n" + std::string(70000, 't')) == "trailers too large");

  // Once malformed, the scanner consumes nothing more until reset.
  http_response_scanner scanner;
  BOOST_TEST((scanner.feed("garbage\r\n").state == scan_state::malformed));
  BOOST_TEST(scanner.feed("HTTP/1.1 200 OK\r\n").consumed == 0u);
  scanner.reset();
  BOOST_TEST(std::string(scanner.error()).empty());
  BOOST_TEST((scanner.feed(hello_response).state == scan_state::complete));
}

// --- command line ---------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(command_line_accepts_a_full_run) {
  const auto options = options_for({"--unix", "run/p.sock", "-c", "32", "-d", "2.5", "--mode", "close", "--mix",
                                    "/burn?ms=20:1/50", "--path", "/healthz", "--threads", "2", "--timeout", "1.5"});
  BOOST_TEST((options.target == bench_options::target_kind::unix_path));
  BOOST_TEST(options.unix_path == "run/p.sock");
  BOOST_TEST(options.connections == 32);
  BOOST_TEST(*options.duration_s == 2.5);
  BOOST_TEST(!options.requests);
  BOOST_TEST((options.mode == bench_mode::close));
  BOOST_TEST(options.mix->path == "/burn?ms=20");
  BOOST_TEST(options.mix->numerator == 1u);
  BOOST_TEST(options.mix->denominator == 50u);
  BOOST_TEST(options.path == "/healthz");
  BOOST_TEST(options.threads == 2);
  BOOST_TEST(options.timeout_s == 1.5);

  const auto tcp = options_for({"--tcp", "127.0.0.1:8080", "-n", "100"});
  BOOST_TEST((tcp.target == bench_options::target_kind::tcp));
  BOOST_TEST(tcp.tcp_host == "127.0.0.1");
  BOOST_TEST(tcp.tcp_port == 8080);
  BOOST_TEST(*tcp.requests == 100u);
  BOOST_TEST((tcp.mode == bench_mode::keep_alive));
  BOOST_TEST(tcp.connections == 64);

  std::vector<const char*> help{"prefork-bench", "--help"};
  auto parsed = prefork::parse_bench_command_line(2, help.data());
  BOOST_TEST_REQUIRE(parsed.has_value());
  BOOST_TEST(parsed->show_help);
  BOOST_TEST(prefork::bench_usage_text("prefork-bench").find("--mix PATH:K/N") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(command_line_errors_name_the_option) {
  BOOST_TEST(command_error({"-d", "1"}) == "give one target: --unix PATH or --tcp HOST:PORT");
  BOOST_TEST(command_error({"--unix", "a", "--tcp", "127.0.0.1:1", "-d", "1"}) ==
             "give one target: --unix PATH or --tcp HOST:PORT");
  BOOST_TEST(command_error({"--unix", "a"}) == "give -d SECONDS or -n REQUESTS (a run must end)");
  BOOST_TEST(command_error({"--unix", "", "-d", "1"}).starts_with("\"--unix\": "));
  BOOST_TEST(command_error({"--tcp", "127.0.0.1", "-d", "1"}).starts_with("\"--tcp\": expected HOST:PORT"));
  BOOST_TEST(command_error({"--tcp", "127.0.0.1:0", "-d", "1"}).starts_with("\"--tcp\": expected HOST:PORT"));
  BOOST_TEST(command_error({"--tcp", "unix:/x", "-d", "1"}).starts_with("\"--tcp\": expected HOST:PORT"));
  BOOST_TEST(command_error({"--unix", "a", "-d", "1", "-c", "0"}) == "\"--connections\": must be at least 1");
  BOOST_TEST(command_error({"--unix", "a", "-d", "0"}) == "\"--duration\": must be a number of seconds > 0");
  BOOST_TEST(command_error({"--unix", "a", "-d", "nan"}) == "\"--duration\": must be a number of seconds > 0");
  BOOST_TEST(command_error({"--unix", "a", "-n", "0"}) == "\"--requests\": must be at least 1");
  BOOST_TEST(command_error({"--unix", "a", "-d", "1", "--mode", "pipelined"}) ==
             "\"--mode\": expected close or keepalive, got \"pipelined\"");
  BOOST_TEST(command_error({"--unix", "a", "-d", "1", "--path", "x"}) ==
             "\"--path\": must start with '/' and have no spaces");
  BOOST_TEST(command_error({"--unix", "a", "-d", "1", "--path", "/a b"}) ==
             "\"--path\": must start with '/' and have no spaces");
  BOOST_TEST(command_error({"--unix", "a", "-d", "1", "--mix", "/burn"}) ==
             "\"--mix\": expected PATH:K/N, e.g. /burn?ms=20:1/50");
  BOOST_TEST(command_error({"--unix", "a", "-d", "1", "--mix", "burn:1/2"}) ==
             "\"--mix\": the path must start with '/' and have no spaces");
  BOOST_TEST(command_error({"--unix", "a", "-d", "1", "--mix", "/burn:50"}) ==
             "\"--mix\": expected K/N after the path, e.g. 1/50");
  for (const char* ratio : {"/b:0/5", "/b:6/5", "/b:x/5", "/b:1/", "/b:1/-5"}) {
    BOOST_TEST(
        command_error({"--unix", "a", "-d", "1", "--mix", ratio}) == "\"--mix\": K/N must be integers with 1 <= K <= N",
        ratio);
  }
  BOOST_TEST(command_error({"--unix", "a", "-d", "1", "--timeout", "0"}) ==
             "\"--timeout\": must be a number of seconds in (0, 3600]");
  BOOST_TEST(command_error({"--unix", "a", "-d", "1", "--threads", "0"}) == "\"--threads\": must be 1..256");
  BOOST_TEST(command_error({"--unix", "a", "-d", "1", "-c", "2", "--threads", "3"}) ==
             "\"--threads\": must not exceed -c (connections)");
  BOOST_TEST(command_error({"--unix", "a", "-d", "1", "--expect-status", "42"}) ==
             "\"--expect-status\": must be a status code 100..999");
  BOOST_TEST(command_error({"--unix", "a", "-d", "1", "--host", "a b"}) == "\"--host\": must have no spaces");
  BOOST_TEST(command_error({"--unix", "a", "-d", "1", "stray"}) == "unexpected argument 'stray'");
  BOOST_TEST(!command_error({"--unix", "a", "-d", "1", "--bogus"}).empty());
  BOOST_TEST(!command_error({"--unix", "a", "-d", "1", "-c", "many"}).empty());
}

// --- the engine against a local server --------------------------------------------------

BOOST_AUTO_TEST_CASE(engine_keep_alive_and_close_modes) {
  test_server server(AF_UNIX, answer_hello);
  auto options = options_for({"--unix", server.path().c_str(), "-n", "200", "-c", "4", "--timeout", "5"});
  auto result = run(options);
  BOOST_TEST(result.requests == 200u);
  BOOST_TEST(result.total_errors() == 0u);
  BOOST_TEST(result.reconnects == 0u);
  BOOST_TEST(result.unfinished == 0u);
  BOOST_TEST(result.latency.count() == 200u);
  BOOST_TEST(result.fast_latency.count() == 200u);
  BOOST_TEST(result.slow_latency.count() == 0u);
  BOOST_TEST(server.accepted() == 4);  // one connection per client, reused

  options.mode = bench_mode::close;
  options.threads = 2;
  result = run(options);
  BOOST_TEST(result.requests == 200u);
  BOOST_TEST(result.total_errors() == 0u);
  BOOST_TEST(server.accepted() == 4 + 200);

  // The JSON line carries the same numbers.
  const auto document = boost::json::parse(prefork::bench_result_json(result)).as_object();
  BOOST_TEST(document.at("mode").as_string() == "close");
  BOOST_TEST(document.at("requests").as_int64() == 200);
  BOOST_TEST(document.at("threads").as_int64() == 2);
  BOOST_TEST(document.at("errors").at("total").as_int64() == 0);
  BOOST_TEST(document.at("latency_us").at("count").as_int64() == 200);
  for (const char* key : {"p50", "p90", "p99", "max", "mean"}) {
    BOOST_TEST(document.at("fast_latency_us").as_object().contains(key));
  }
  BOOST_TEST(document.at("rps").as_double() > 0);
}

BOOST_AUTO_TEST_CASE(engine_over_tcp_and_the_mix) {
  std::atomic<int> slow_seen{0};
  test_server server(AF_INET, [&](std::string_view request) {
    if (request.starts_with("GET /slow ")) ++slow_seen;
    return test_server::reply{};
  });
  const auto address = server.tcp_address();
  auto result = run(options_for({"--tcp", address.c_str(), "-n", "50", "-c", "2", "--mix", "/slow:1/5"}));
  BOOST_TEST(result.requests == 50u);
  BOOST_TEST(result.slow_requests == 10u);
  BOOST_TEST(slow_seen == 10);
  BOOST_TEST(result.slow_latency.count() == 10u);
  BOOST_TEST(result.fast_latency.count() == 40u);
  BOOST_TEST(result.total_errors() == 0u);

  result = run(options_for({"--tcp", address.c_str(), "-n", "20", "-c", "2", "--mode", "close"}));
  BOOST_TEST(result.requests == 20u);
  BOOST_TEST(result.total_errors() == 0u);
}

BOOST_AUTO_TEST_CASE(engine_duration_ends_the_run) {
  test_server server(AF_UNIX, answer_hello);
  const auto started = std::chrono::steady_clock::now();
  const auto result = run(options_for({"--unix", server.path().c_str(), "-d", "0.2", "-c", "2"}));
  const auto elapsed = std::chrono::steady_clock::now() - started;
  BOOST_TEST(result.requests > 0u);
  BOOST_TEST(result.total_errors() == 0u);
  BOOST_TEST(result.duration_s >= 0.2);
  BOOST_TEST(elapsed < std::chrono::seconds(3));
}

BOOST_AUTO_TEST_CASE(engine_server_closing_keep_alive_is_a_reconnect) {
  test_server server(AF_UNIX, [](std::string_view) {
    return test_server::reply{test_server::action::answer_and_close,
                              "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok"};
  });
  const auto result = run(options_for({"--unix", server.path().c_str(), "-n", "10", "-c", "1"}));
  BOOST_TEST(result.requests == 10u);
  BOOST_TEST(result.total_errors() == 0u);
  BOOST_TEST(result.reconnects == 10u);

  // A body delimited by the close completes at EOF.
  test_server until_close(AF_UNIX, [](std::string_view) {
    return test_server::reply{test_server::action::answer_and_close, "HTTP/1.0 200 OK\r\n\r\nbody"};
  });
  const auto closed = run(options_for({"--unix", until_close.path().c_str(), "-n", "5", "-c", "1"}));
  BOOST_TEST(closed.requests == 5u);
  BOOST_TEST(closed.total_errors() == 0u);
}

BOOST_AUTO_TEST_CASE(engine_counts_each_kind_of_error) {
  // connect_refused: no socket file, then a TCP port nobody listens on.
  auto result = run(options_for({"--unix", "/nonexistent/prefork-bench.sock", "-n", "3", "-c", "1"}));
  BOOST_TEST(errors_of(result, bench_error::connect_refused) == 3u);
  BOOST_TEST(result.requests == 0u);
  const auto closed = closed_tcp_address();
  result = run(options_for({"--tcp", closed.c_str(), "-n", "2", "-c", "1"}));
  BOOST_TEST(errors_of(result, bench_error::connect_refused) == 2u);

  using action = test_server::action;
  using on_data = test_server::on_data;
  const auto expect_only = [](test_server::reply reply, bench_error kind, const char* timeout = "5",
                              on_data data = on_data::read) {
    test_server server(
        AF_UNIX, [reply](std::string_view) { return reply; }, data);
    const auto outcome =
        run(options_for({"--unix", server.path().c_str(), "-n", "4", "-c", "2", "--timeout", timeout}));
    BOOST_TEST(errors_of(outcome, kind) == 4u, prefork::to_string(kind) << ": " << prefork::bench_result_json(outcome));
    BOOST_TEST(outcome.total_errors() == 4u);
    BOOST_TEST(outcome.requests == 0u);
  };
  expect_only({action::answer, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"}, bench_error::bad_status);
  expect_only({action::answer, "garbage\r\n\r\n"}, bench_error::malformed);
  expect_only({action::answer, std::string(hello_response) + "extra"}, bench_error::malformed);
  expect_only({action::close_without_answer, ""}, bench_error::eof_before_response);
  expect_only({action::answer_and_close, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"},
              bench_error::eof_before_response);
  expect_only({}, bench_error::reset, "5", on_data::close_unread);
  expect_only({action::never_answer, ""}, bench_error::timeout, "0.1");
}

BOOST_AUTO_TEST_CASE(engine_reports_a_target_it_cannot_resolve) {
  auto options = options_for({"--tcp", "no-such-host.invalid:80", "-n", "1"});
  const auto result = prefork::run_bench(options);
  BOOST_TEST_REQUIRE(!result.has_value());
  BOOST_TEST(result.error().starts_with("cannot resolve no-such-host.invalid"));
}

BOOST_AUTO_TEST_SUITE_END()
