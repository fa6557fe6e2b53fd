// Hostile clients against the real preforkd (SPEC section 7): malformed HTTP, slow-loris
// connections, silent clients, resets in the middle of a response, descriptor exhaustion
// (EMFILE) and abuse of the control socket. After each, the service answers normally and
// no worker died (control `stats`: worker_crashes == 0, the same worker pids).
#include "prefork/control_client.hpp"
#include "prefork/socket_connect.hpp"
#include "prefork/testing.hpp"
#include "support/http_client.hpp"
#include "support/load.hpp"
#include "support/programs.hpp"
#include "support/server_helpers.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/system/system_error.hpp>
#include <boost/test/unit_test.hpp>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

using namespace prefork::test_support;
using namespace std::chrono_literals;
namespace fs = std::filesystem;
namespace json = boost::json;
using clock_type = std::chrono::steady_clock;

namespace {

constexpr auto control_timeout = 5s;

// The sanitizer runtimes need descriptors of their own: UBSan's vptr check probes memory
// through a pipe, and at EMFILE it reports every uncached vptr as invalid. Descriptor
// exhaustion is tested in the normal build only.
#if defined(__SANITIZE_ADDRESS__)
constexpr bool sanitized_build = true;
#else
constexpr bool sanitized_build = false;
#endif
constexpr auto request_timeout = 5s;

// ---------------------------------------------------------------------------------------
// Raw, non-blocking client sockets: hostile clients send what http_connection would not.

class raw_socket {
 public:
  raw_socket() = default;
  explicit raw_socket(int fd) noexcept : fd_(fd) {}
  ~raw_socket() { close(); }
  raw_socket(raw_socket&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  raw_socket& operator=(raw_socket&& other) noexcept {
    if (this != &other) {
      close();
      fd_ = std::exchange(other.fd_, -1);
    }
    return *this;
  }

  int fd() const noexcept { return fd_; }
  bool is_open() const noexcept { return fd_ >= 0; }
  void close() noexcept {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
};

// Connects a non-blocking socket to `where`; a Unix connect completes at once (or fails),
// a TCP connect to localhost is waited for up to `timeout`. Throws std::system_error.
raw_socket connect_raw(const endpoint& where, std::chrono::milliseconds timeout = 5000ms) {
  sockaddr_storage storage{};
  socklen_t length = 0;
  if (where.type == endpoint::kind::unix_socket) {
    auto& address = reinterpret_cast<sockaddr_un&>(storage);
    address.sun_family = AF_UNIX;
    if (where.path.size() >= sizeof address.sun_path) throw std::runtime_error("socket path too long");
    std::memcpy(address.sun_path, where.path.c_str(), where.path.size() + 1);
    length = sizeof address;
  } else {
    auto& address = reinterpret_cast<sockaddr_in&>(storage);
    address.sin_family = AF_INET;
    address.sin_port = htons(where.port);
    if (::inet_pton(AF_INET, where.host.c_str(), &address.sin_addr) != 1)
      throw std::runtime_error("not IPv4: " + where.host);
    length = sizeof address;
  }
  raw_socket socket(::socket(storage.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!socket.is_open()) throw std::system_error(errno, std::generic_category(), "socket");
  auto ec = prefork::connect_until(socket.fd(), reinterpret_cast<const sockaddr*>(&storage), length,
                                   clock_type::now() + timeout);
  if (ec) throw boost::system::system_error(ec, "connect to " + where.to_string());
  return socket;
}

// Sends all of `bytes` before `deadline`. 0 on success, else the errno (EPIPE, ECONNRESET:
// the server closed first, which is fine for a hostile client) or ETIMEDOUT.
int send_all(int fd, std::string_view bytes, clock_type::time_point deadline) {
  while (!bytes.empty()) {
    ssize_t sent = ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (sent > 0) {
      bytes.remove_prefix(static_cast<std::size_t>(sent));
      continue;
    }
    if (sent < 0 && errno == EINTR) continue;
    if (sent < 0 && errno != EAGAIN) return errno;
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock_type::now());
    if (left <= 0ms) return ETIMEDOUT;
    pollfd entry{fd, POLLOUT, 0};
    ::poll(&entry, 1, static_cast<int>(left.count()));
  }
  return 0;
}

struct read_result {
  std::string data;
  bool closed = false;  // EOF or reset seen before the deadline
};

// Reads until the peer closes or `deadline` passes (then `closed` is false).
read_result read_until_closed(int fd, clock_type::time_point deadline) {
  read_result result;
  char buffer[16384];
  for (;;) {
    ssize_t got = ::recv(fd, buffer, sizeof buffer, 0);
    if (got > 0) {
      result.data.append(buffer, static_cast<std::size_t>(got));
      continue;
    }
    if (got == 0 || (got < 0 && (errno == ECONNRESET || errno == EPIPE))) {
      result.closed = true;
      return result;
    }
    if (errno == EINTR) continue;
    if (errno != EAGAIN) {
      result.closed = true;
      return result;
    }
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock_type::now());
    if (left <= 0ms) return result;
    pollfd entry{fd, POLLIN, 0};
    ::poll(&entry, 1, static_cast<int>(left.count()));
  }
}

// Reads one line (without its newline) before `deadline`; nullopt on timeout or close.
std::optional<std::string> read_line(int fd, std::string& pending, clock_type::time_point deadline) {
  for (;;) {
    auto newline = pending.find('\n');
    if (newline != std::string::npos) {
      std::string line = pending.substr(0, newline);
      pending.erase(0, newline + 1);
      return line;
    }
    char buffer[65536];
    ssize_t got = ::recv(fd, buffer, sizeof buffer, 0);
    if (got > 0) {
      pending.append(buffer, static_cast<std::size_t>(got));
      continue;
    }
    if (got == 0) return std::nullopt;
    if (errno == EINTR) continue;
    if (errno != EAGAIN) return std::nullopt;
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock_type::now());
    if (left <= 0ms) return std::nullopt;
    pollfd entry{fd, POLLIN, 0};
    ::poll(&entry, 1, static_cast<int>(left.count()));
  }
}

// The status code of the first response in `data`, 0 when `data` does not start with one.
unsigned first_status(std::string_view data) {
  constexpr std::string_view prefix = "HTTP/1.1 ";
  if (!data.starts_with(prefix) || data.size() < prefix.size() + 3) return 0;
  unsigned status = 0;
  for (char c : data.substr(prefix.size(), 3)) {
    if (c < '0' || c > '9') return 0;
    status = status * 10 + static_cast<unsigned>(c - '0');
  }
  return status;
}

std::string printable(std::string_view bytes, std::size_t limit = 120) {
  std::string text;
  for (char c : bytes.substr(0, limit)) {
    if (c >= 0x20 && c < 0x7f) {
      text += c;
    } else {
      char escaped[8];
      std::snprintf(escaped, sizeof escaped, "\\x%02x", static_cast<unsigned char>(c));
      text += escaped;
    }
  }
  if (bytes.size() > limit) text += "...(" + std::to_string(bytes.size()) + " bytes)";
  return text;
}

// ---------------------------------------------------------------------------------------
// The master's view, through the control socket and /proc.

json::object master_stats(const prefork::testing::server& server) {
  auto reply = control(server, {{"cmd", "stats"}}, control_timeout);
  BOOST_REQUIRE_MESSAGE(reply.has_value(), "control stats failed: " << reply.error().message);
  BOOST_REQUIRE_MESSAGE(reply->is_object(), "stats is not an object: " << json::serialize(*reply));
  return reply->as_object();
}

std::uint64_t counter(const json::object& stats, std::string_view key) {
  auto value = stats.if_contains(key);
  BOOST_REQUIRE_MESSAGE(value != nullptr, "stats has no \"" << key << "\": " << json::serialize(stats));
  if (value->is_uint64()) return value->as_uint64();
  BOOST_REQUIRE_MESSAGE(value->is_int64() && value->as_int64() >= 0, "stats." << key << " is not a count");
  return static_cast<std::uint64_t>(value->as_int64());
}

// CPU seconds (user + system) the process has used so far; -1 when it is gone.
double cpu_seconds(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto close = text.rfind(')');
  if (close == std::string::npos) return -1;
  std::istringstream fields(text.substr(close + 2));
  std::string field;
  unsigned long long utime = 0;
  unsigned long long stime = 0;
  // After "pid (comm) ": state is field 3; utime and stime are fields 14 and 15.
  for (int index = 3; index <= 15 && fields >> field; ++index) {
    if (index == 14) utime = std::stoull(field);
    if (index == 15) stime = std::stoull(field);
  }
  return static_cast<double>(utime + stime) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

std::size_t open_descriptor_count(pid_t pid) {
  std::error_code ec;
  std::size_t count = 0;
  for (fs::directory_iterator it(fs::path("/proc") / std::to_string(pid) / "fd", ec), end; !ec && it != end;
       it.increment(ec))
    ++count;
  return count;
}

// GET / answers 200 with the hello body, no worker crashed or exited, and the workers are
// the ones that served before the hostile clients came.
void require_healthy(prefork::testing::server& server, const std::vector<pid_t>& workers_before) {
  auto response = http_get(unix_endpoint(server), "/", request_timeout);
  BOOST_REQUIRE_MESSAGE(response.has_value(), "GET / after the hostile clients: " << response.error().message() << "\n"
                                                                                  << server.log_tail(40));
  BOOST_TEST(response->status == 200u);
  BOOST_TEST(response->body == "Hello, world!\n");
  auto stats = master_stats(server);
  BOOST_TEST(counter(stats, "worker_crashes") == 0u, json::serialize(stats));
  BOOST_TEST(counter(stats, "worker_exits") == 0u, json::serialize(stats));
  BOOST_TEST((worker_pids(server) == workers_before), "a worker was replaced\n" << server.log_tail(40));
  BOOST_TEST(server.find_log("connection handler failed").empty(), server.log_tail(40));
}

// Raises this process's soft descriptor limit to `wanted` (or the hard limit), for tests
// that hold hundreds of sockets.
void ensure_descriptor_room(rlim_t wanted) {
  rlimit limit{};
  BOOST_REQUIRE(::getrlimit(RLIMIT_NOFILE, &limit) == 0);
  if (limit.rlim_cur != RLIM_INFINITY && limit.rlim_cur < wanted) {
    limit.rlim_cur = limit.rlim_max == RLIM_INFINITY ? wanted : std::min(wanted, limit.rlim_max);
    BOOST_REQUIRE(::setrlimit(RLIMIT_NOFILE, &limit) == 0);
  }
  BOOST_REQUIRE(::getrlimit(RLIMIT_NOFILE, &limit) == 0);
  BOOST_REQUIRE_MESSAGE(limit.rlim_cur == RLIM_INFINITY || limit.rlim_cur >= wanted,
                        "this test needs " << wanted << " descriptors, the hard limit is " << limit.rlim_max);
}

// ---------------------------------------------------------------------------------------
// Malformed requests: each kind with the statuses it may get (empty: no answer at all).

enum class malformed_kind { random_bytes, truncated, bad_chunked, many_headers, nul_bytes, long_method, bad_syntax };
constexpr int malformed_kind_count = 7;

const char* to_string(malformed_kind kind) {
  switch (kind) {
    case malformed_kind::random_bytes: return "random_bytes";
    case malformed_kind::truncated: return "truncated";
    case malformed_kind::bad_chunked: return "bad_chunked";
    case malformed_kind::many_headers: return "many_headers";
    case malformed_kind::nul_bytes: return "nul_bytes";
    case malformed_kind::long_method: return "long_method";
    case malformed_kind::bad_syntax: return "bad_syntax";
  }
  return "?";
}

struct malformed_case {
  malformed_kind kind;
  std::string bytes;
  std::set<unsigned> allowed;  // statuses it may be answered with; 0: closed without answer
};

malformed_case make_malformed(std::mt19937& random, int index) {
  const auto kind = static_cast<malformed_kind>(index % malformed_kind_count);
  auto pick = [&](std::size_t low, std::size_t high) {
    return std::uniform_int_distribution<std::size_t>(low, high)(random);
  };
  const std::string valid = "GET / HTTP/1.1\r\nHost: example\r\nUser-Agent: hostile\r\n\r\n";
  malformed_case result{kind, {}, {}};
  switch (kind) {
    case malformed_kind::random_bytes: {
      result.bytes.resize(pick(1, 2048));
      for (char& c : result.bytes) c = static_cast<char>(pick(0, 255));
      // Random bytes rarely form a request; if they happen to start like one, any
      // answer of the hello app is fine.
      result.allowed = {0, 400, 404, 405, 408, 413, 431};
      break;
    }
    case malformed_kind::truncated:
      result.bytes = valid.substr(0, pick(1, valid.size() - 1));
      result.allowed = {0};  // the client closed in the middle: nobody reads an answer
      break;
    case malformed_kind::bad_chunked: {
      static const std::vector<std::string> bodies = {"zz\r\nhello\r\n0\r\n\r\n",
                                                      "5\r\nhelloXX0\r\n\r\n",
                                                      "-1\r\n\r\n",
                                                      "ffffffffffffffffffff\r\n",
                                                      "5\r\nhel",
                                                      "5;\x01\r\nhello\r\n0\r\n\r\n",
                                                      "\r\n\r\n",
                                                      "0x5\r\nhello\r\n0\r\n\r\n",
                                                      "5\r\nhello\r\n0\r\nBad Trailer\r\n\r\n"};
      result.bytes =
          "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + bodies[index / 7 % bodies.size()];
      result.allowed = {0, 400, 413};  // 0: a body cut short by the client's close
      break;
    }
    case malformed_kind::many_headers: {
      result.bytes = "GET / HTTP/1.1\r\nHost: x\r\n";
      const std::size_t count = pick(1000, 5000);
      for (std::size_t i = 0; i < count; ++i) result.bytes += "X-H" + std::to_string(i) + ": v\r\n";
      result.bytes += "\r\n";
      result.allowed = {431};
      break;
    }
    case malformed_kind::nul_bytes: {
      static const std::vector<std::string> requests = {
          std::string("GET /\0 HTTP/1.1\r\nHost: x\r\n\r\n", 29),
          std::string("GET / HTTP/1.1\r\nHost: \0x\r\n\r\n", 29), std::string("G\0T / HTTP/1.1\r\nHost: x\r\n\r\n", 28),
          std::string("GET / HTTP/1.1\r\nX-\0: 1\r\n\r\n", 27), std::string("\0\0\0\0\r\n\r\n", 8)};
      result.bytes = requests[index / 7 % requests.size()];
      result.allowed = {400};
      break;
    }
    case malformed_kind::long_method: {
      // Over max_header_bytes: 431. Shorter: Beast takes any token as a method, and the
      // hello app answers an unknown method on "/" with 405.
      result.bytes = std::string(pick(100, 20000), 'M') + " / HTTP/1.1\r\nHost: x\r\n\r\n";
      result.allowed = {405, 431};
      break;
    }
    case malformed_kind::bad_syntax: {
      static const std::vector<std::string> requests = {
          "GET / HTTP/9.9\r\nHost: x\r\n\r\n",
          "GET / HTTP/1.1\r\nHost x\r\n\r\n",
          "GET / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
          "GET / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
          "GET / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n",
          "GET\t/ HTTP/1.1\r\n\r\n",
          "GET / HTTP/1.1\r\n Folded: header\r\n\r\n",
          "GET / HTTP/1.1\r\nHost: x\rX\r\n\r\n",
          "/ GET HTTP/1.1\r\n\r\n",
          "GET / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked, identity\r\n\r\n",
          "GET / HTTP/1.1 extra\r\n\r\n",
          "GET / HTTP/1.1\r\n: empty-name\r\n\r\n"};
      result.bytes = requests[index / 7 % requests.size()];
      result.allowed = {400, 413};
      break;
    }
  }
  return result;
}

// Runs one malformed case; "" when the server behaved, else what went wrong.
std::string run_malformed(const endpoint& where, const malformed_case& test) {
  auto deadline = clock_type::now() + request_timeout;
  raw_socket socket = connect_raw(where);
  (void)send_all(socket.fd(), test.bytes, deadline);  // the server may close before all is sent
  ::shutdown(socket.fd(), SHUT_WR);
  read_result answer = read_until_closed(socket.fd(), deadline);
  if (!answer.closed) return "the connection was not closed within " + std::to_string(request_timeout.count()) + " s";
  unsigned status = answer.data.empty() ? 0 : first_status(answer.data);
  if (!answer.data.empty() && status == 0) return "the answer is not an HTTP/1.1 response: " + printable(answer.data);
  if (!test.allowed.contains(status)) {
    return "answered " + (status == 0 ? std::string("nothing") : std::to_string(status)) + ": " +
           printable(answer.data, 60);
  }
  return {};
}

}  // namespace

BOOST_AUTO_TEST_SUITE(hostile)

BOOST_AUTO_TEST_CASE(malformed_requests_are_refused_while_service_goes_on) {
  constexpr int cases = 2000;
  constexpr int threads = 4;
  auto options = boost_test_options();
  options.config["workers"] = 2;
  prefork::testing::server server(std::move(options));
  const auto workers = worker_pids(server);
  const endpoint target = unix_endpoint(server);

  // Well-behaved clients run throughout and must never fail.
  load_options load_config;
  load_config.target = target;
  load_config.clients = 2;
  load_generator load(load_config);

  const unsigned seed = std::random_device{}();
  BOOST_TEST_MESSAGE("malformed requests: seed " << seed);
  std::atomic<int> next{0};
  std::mutex mutex;
  std::vector<std::string> failures;
  std::map<std::string, int> outcomes;
  auto run = [&](unsigned thread_seed) {
    std::mt19937 random(thread_seed);
    for (int index; (index = next.fetch_add(1)) < cases;) {
      malformed_case test = make_malformed(random, index);
      std::string problem;
      try {
        problem = run_malformed(target, test);
      } catch (const std::exception& e) {
        problem = std::string("client error: ") + e.what();
      }
      std::lock_guard lock(mutex);
      ++outcomes[std::string(to_string(test.kind)) + (problem.empty() ? " ok" : " FAILED")];
      if (!problem.empty() && failures.size() < 10) {
        failures.push_back(std::string(to_string(test.kind)) + " " + printable(test.bytes, 80) + ": " + problem);
      }
    }
  };
  std::vector<std::jthread> pool;  // joined on every path: each run() ends by itself
  for (int i = 0; i < threads; ++i) pool.emplace_back(run, seed + static_cast<unsigned>(i));
  for (auto& thread : pool) thread.join();

  auto result = load.stop();
  std::ostringstream summary;
  for (const auto& [name, count] : outcomes) summary << name << ": " << count << "; ";
  BOOST_TEST_MESSAGE(summary.str());
  for (const auto& failure : failures) BOOST_ERROR(failure);
  BOOST_TEST(result.total_failures() == 0u, "well-behaved clients failed: " << result.summary());
  BOOST_TEST(result.successes > 0u, result.summary());
  require_healthy(server, workers);
}

BOOST_AUTO_TEST_CASE(slow_loris_connections_do_not_starve_normal_clients) {
  constexpr int slow_clients = 300;
  ensure_descriptor_room(1024);
  auto options = boost_test_options();
  options.config["workers"] = 2;
  options.config["http"] = json::object{{"request_timeout", 2}};
  prefork::testing::server server(std::move(options));
  const auto workers = worker_pids(server);

  // Each slow client sends a request line, then one header byte at a time.
  std::vector<raw_socket> slow;
  std::vector<std::string> answers(slow_clients);
  std::vector<bool> closed(slow_clients, false);
  for (int i = 0; i < slow_clients; ++i) {
    slow.push_back(connect_raw(unix_endpoint(server)));
    BOOST_REQUIRE(send_all(slow.back().fd(), "GET / HTTP/1.1\r\n", clock_type::now() + 1s) == 0);
  }
  const auto started = clock_type::now();

  load_options load_config;
  load_config.target = unix_endpoint(server);
  load_config.clients = 4;
  load_generator load(load_config);

  const std::string trickle = "X-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n";
  std::size_t round = 0;
  std::uint64_t served_while_slow = 0;
  while (clock_type::now() - started < 6s) {
    int still_open = 0;
    for (int i = 0; i < slow_clients; ++i) {
      if (closed[i]) continue;
      char byte = trickle[round % trickle.size()];
      (void)::send(slow[i].fd(), &byte, 1, MSG_NOSIGNAL);
      read_result got = read_until_closed(slow[i].fd(), clock_type::now());
      answers[i] += got.data;
      if (got.closed) {
        closed[i] = true;
        slow[i].close();
      } else {
        ++still_open;
      }
    }
    // Within the request timeout every slow client is still there, and the others are served.
    if (clock_type::now() - started < 1500ms) served_while_slow = load.snapshot().successes;
    if (still_open == 0) break;
    ++round;
    std::this_thread::sleep_for(50ms);
  }
  const auto finished = clock_type::now() - started;
  auto result = load.stop();
  BOOST_TEST_MESSAGE("slow loris: " << round << " rounds, all closed after "
                                    << std::chrono::duration_cast<std::chrono::milliseconds>(finished).count()
                                    << " ms; normal clients: " << result.summary());
  BOOST_TEST(served_while_slow >= 50u, "normal clients were starved: " << served_while_slow << " served in 1.5 s");
  BOOST_TEST(result.total_failures() == 0u, result.summary());
  int answered_408 = 0;
  for (int i = 0; i < slow_clients; ++i) {
    BOOST_TEST(closed[i], "slow client " << i << " is still open after 6 s (request_timeout is 2 s)");
    if (first_status(answers[i]) == 408) ++answered_408;
  }
  BOOST_TEST(answered_408 == slow_clients, answered_408 << " of " << slow_clients << " slow clients got 408");
  require_healthy(server, workers);
}

BOOST_AUTO_TEST_CASE(silent_connections_are_closed_after_request_timeout) {
  constexpr int silent_clients = 20;
  auto options = boost_test_options();
  options.config["http"] = json::object{{"request_timeout", 1}};
  prefork::testing::server server(std::move(options));
  const auto workers = worker_pids(server);

  std::vector<raw_socket> silent;
  for (int i = 0; i < silent_clients; ++i) silent.push_back(connect_raw(unix_endpoint(server)));
  const auto started = clock_type::now();
  for (auto& socket : silent) {
    read_result got = read_until_closed(socket.fd(), started + 5s);
    auto after = std::chrono::duration_cast<std::chrono::milliseconds>(clock_type::now() - started);
    BOOST_TEST(got.closed, "a silent connection is still open after " << after.count() << " ms");
    BOOST_TEST(got.data.empty(), "a silent connection got an answer: " << printable(got.data));
  }
  auto elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(clock_type::now() - started);
  BOOST_TEST_MESSAGE("silent connections closed after " << elapsed.count() << " ms");
  BOOST_TEST(elapsed >= 800ms, "closed before request_timeout (1 s): " << elapsed.count() << " ms");
  BOOST_TEST(elapsed < 5000ms, "closed long after request_timeout (1 s): " << elapsed.count() << " ms");
  require_healthy(server, workers);
}

BOOST_AUTO_TEST_CASE(clients_resetting_mid_response_do_not_hurt_the_service) {
  constexpr int resets = 40;
  constexpr int pipelined = 4000;  // ~250 KB of answers: more than the socket buffers hold
  auto options = boost_test_options();
  options.config["bind"] = json::array{"unix:app.sock", "127.0.0.1:0"};
  prefork::testing::server server(std::move(options));
  const auto workers = worker_pids(server);
  auto tcp = listening_endpoint(server, "127.0.0.1:0");
  BOOST_REQUIRE_MESSAGE(tcp.has_value(), "no TCP listener logged\n" << server.log_tail(40));

  std::string requests;
  for (int i = 0; i < pipelined; ++i) requests += "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
  int mid_response = 0;
  for (int i = 0; i < resets; ++i) {
    raw_socket socket = connect_raw(*tcp);
    // The server stops reading once its answers fill the buffers: send what fits.
    (void)send_all(socket.fd(), requests, clock_type::now() + 300ms);
    // Wait until answers flow, read a little, then reset: SO_LINGER 0 makes close() send RST.
    pollfd entry{socket.fd(), POLLIN, 0};
    if (::poll(&entry, 1, 5000) == 1) {
      char buffer[1024];
      if (::recv(socket.fd(), buffer, sizeof buffer, 0) > 0) ++mid_response;
    }
    linger reset{1, 0};
    ::setsockopt(socket.fd(), SOL_SOCKET, SO_LINGER, &reset, sizeof reset);
    socket.close();
  }
  BOOST_TEST(mid_response == resets, mid_response << " of " << resets << " resets came in the middle of answers");
  // Meanwhile, and after, normal clients are served.
  load_options load_config;
  load_config.target = *tcp;
  load_config.clients = 2;
  load_generator load(load_config);
  BOOST_TEST(load.wait_successes(200, 20s), load.snapshot().summary());
  auto result = load.stop();
  BOOST_TEST(result.total_failures() == 0u, result.summary());
  require_healthy(server, workers);
}

// A precondition, not a disabled() decorator: ctest selects the whole suite
// (--run_test=hostile), which would also run test cases disabled by a decorator.
boost::test_tools::assertion_result not_sanitized(boost::unit_test::test_unit_id) {
  boost::test_tools::assertion_result result(!sanitized_build);
  result.message() << "skipped: sanitizer runtimes misreport at EMFILE (see sanitized_build)";
  return result;
}

BOOST_AUTO_TEST_CASE(descriptor_exhaustion_pauses_accepting_without_spinning,
                     *boost::unit_test::precondition(not_sanitized)) {
  // preforkd raises its soft limit to the hard one: the wrapper lowers both (dash and bash
  // set both with `ulimit -n`), for the master and the workers it forks.
  constexpr int descriptor_limit = 64;
  constexpr int clients = 300;
  ensure_descriptor_room(1024);
  prefork::testing::temp_directory scratch;
  const fs::path wrapper = scratch / "preforkd-lowfd";
  prefork::testing::write_file(wrapper, "#!/bin/sh\nulimit -n " + std::to_string(descriptor_limit) +
                                            " || exit 125\nexec '" + preforkd_path().string() + "' \"$@\"\n");
  fs::permissions(wrapper, fs::perms::owner_all);

  auto options = boost_test_options();
  options.program = wrapper;
  options.config["workers"] = 2;
  options.config["http"] = json::object{{"request_timeout", 3}};
  prefork::testing::server server(std::move(options));
  const auto workers = worker_pids(server);
  const pid_t master = server.pid();
  rlimit limit{};
  BOOST_REQUIRE(::prlimit(master, RLIMIT_NOFILE, nullptr, &limit) == 0);
  BOOST_REQUIRE_EQUAL(limit.rlim_max, static_cast<rlim_t>(descriptor_limit));
  const std::size_t master_fds_before = open_descriptor_count(master);

  // More clients than descriptors: each sends a request and does not read its answer.
  std::vector<raw_socket> crowd;
  for (int i = 0; i < clients; ++i) {
    crowd.push_back(connect_raw(unix_endpoint(server)));
    (void)send_all(crowd.back().fd(), "GET / HTTP/1.1\r\nHost: x\r\n\r\n", clock_type::now() + 1s);
  }
  std::this_thread::sleep_for(300ms);
  const double cpu_before = cpu_seconds(master);
  BOOST_REQUIRE_MESSAGE(cpu_before >= 0.0, "the master is gone");
  const auto measured_from = clock_type::now();
  std::this_thread::sleep_for(2s);
  const double cpu_after = cpu_seconds(master);
  BOOST_REQUIRE_MESSAGE(cpu_after >= 0.0, "the master died at EMFILE");
  const double cpu_used = cpu_after - cpu_before;
  const double wall = std::chrono::duration<double>(clock_type::now() - measured_from).count();
  const std::size_t master_fds_loaded = open_descriptor_count(master);
  BOOST_TEST_MESSAGE("EMFILE: the master used " << cpu_used << " s of CPU in " << wall << " s, holding "
                                                << master_fds_loaded << " descriptors (" << master_fds_before
                                                << " before)");
  BOOST_TEST(cpu_used < 0.5 * wall, "the master spins at EMFILE: " << cpu_used << " s of CPU in " << wall << " s");

  // The crowd leaves; the master accepts again, for good.
  crowd.clear();
  const auto left_at = clock_type::now();
  std::optional<raw_response> answer;
  std::string last_error;
  while (clock_type::now() - left_at < 20s) {
    auto response = http_get(unix_endpoint(server), "/", 2s);
    if (response && response->status == 200) {
      answer = *response;
      break;
    }
    last_error = response ? "status " + std::to_string(response->status) : response.error().message();
    std::this_thread::sleep_for(100ms);
  }
  BOOST_REQUIRE_MESSAGE(answer.has_value(), "no answer within 20 s after the clients left (last: "
                                                << last_error << "); the master holds " << open_descriptor_count(master)
                                                << " descriptors\n"
                                                << server.log_tail(40));
  BOOST_TEST_MESSAGE(
      "served again " << std::chrono::duration_cast<std::chrono::milliseconds>(clock_type::now() - left_at).count()
                      << " ms after the clients left");
  for (int i = 0; i < 50; ++i) {
    auto response = http_get(unix_endpoint(server), "/", request_timeout);
    BOOST_REQUIRE_MESSAGE(response && response->status == 200, "request " << i << " after recovery failed\n"
                                                                          << server.log_tail(40));
  }
  auto stats = master_stats(server);
  BOOST_TEST_MESSAGE("stats: " << json::serialize(stats));
  BOOST_TEST(counter(stats, "accept_pauses") > 0u, "the master never ran out of descriptors: the test proves nothing");
  BOOST_TEST(counter(stats, "worker_crashes") == 0u);
  BOOST_TEST((worker_pids(server) == workers));
  // Every descriptor the crowd cost the master is given back.
  std::size_t master_fds_after = open_descriptor_count(master);
  for (auto until = clock_type::now() + 5s; master_fds_after > master_fds_before && clock_type::now() < until;) {
    std::this_thread::sleep_for(50ms);
    master_fds_after = open_descriptor_count(master);
  }
  BOOST_TEST(master_fds_after <= master_fds_before,
             "the master holds " << master_fds_after << " descriptors, " << master_fds_before << " before the crowd");
}

BOOST_AUTO_TEST_CASE(control_socket_abuse_leaves_the_master_healthy) {
  prefork::testing::server server(boost_test_options());
  const auto workers = worker_pids(server);
  const endpoint control_endpoint = endpoint::unix_socket(server.control_path());
  const unsigned seed = std::random_device{}();
  BOOST_TEST_MESSAGE("control abuse: seed " << seed);
  std::mt19937 random(seed);

  // Random bytes (no newline inside) then a newline: exactly one error reply each, and
  // the connection stays usable.
  for (int i = 0; i < 200; ++i) {
    std::string junk(std::uniform_int_distribution<std::size_t>(1, 4096)(random), '\0');
    for (char& c : junk) {
      do c = static_cast<char>(random() & 0xff);
      while (c == '\n');
    }
    raw_socket socket = connect_raw(control_endpoint);
    BOOST_REQUIRE(send_all(socket.fd(), junk + "\n{\"cmd\":\"ping\"}\n", clock_type::now() + control_timeout) == 0);
    std::string pending;
    auto error_line = read_line(socket.fd(), pending, clock_type::now() + control_timeout);
    BOOST_REQUIRE_MESSAGE(error_line.has_value(), "no reply to junk " << printable(junk));
    auto error_reply = prefork::parse_control_reply(*error_line);
    BOOST_TEST((!error_reply && prefork::is_remote(error_reply.error())),
               "junk was not answered with an error: " << printable(*error_line));
    auto pong = read_line(socket.fd(), pending, clock_type::now() + control_timeout);
    BOOST_TEST((pong && *pong == R"({"ok":true,"result":"pong"})"), "no pong after junk " << printable(junk));
  }

  // A huge line: too_large, then the connection goes on.
  {
    raw_socket socket = connect_raw(control_endpoint);
    std::string huge(1 << 20, 'x');
    BOOST_REQUIRE(send_all(socket.fd(), huge + "\n{\"cmd\":\"ping\"}\n", clock_type::now() + control_timeout) == 0);
    std::string pending;
    auto first = read_line(socket.fd(), pending, clock_type::now() + control_timeout);
    BOOST_REQUIRE(first.has_value());
    auto reply = prefork::parse_control_reply(*first);
    BOOST_TEST((!reply && reply.error().code == prefork::errc::too_large), "a 1 MiB line: " << printable(*first));
    auto pong = read_line(socket.fd(), pending, clock_type::now() + control_timeout);
    BOOST_TEST((pong && *pong == R"({"ok":true,"result":"pong"})"));
  }

  // Thousands of requests on one connection, written while the replies are read.
  {
    constexpr int requests = 5000;
    raw_socket socket = connect_raw(control_endpoint);
    std::string batch;
    for (int i = 0; i < requests; ++i) batch += i % 2 == 0 ? "{\"cmd\":\"ping\"}\n" : "{\"cmd\":\"stats\"}\n";
    std::thread writer([&] { (void)send_all(socket.fd(), batch, clock_type::now() + 30s); });
    std::string pending;
    int answered = 0;
    for (; answered < requests; ++answered) {
      auto line = read_line(socket.fd(), pending, clock_type::now() + control_timeout);
      if (!line || !prefork::parse_control_reply(*line)) break;
    }
    writer.join();
    BOOST_TEST(answered == requests, answered << " of " << requests << " pipelined requests answered");
  }

  // A client that never reads: it fills its socket with replies; others are still served.
  raw_socket hog = connect_raw(control_endpoint);
  {
    std::string ping_batch;
    for (int i = 0; i < 1000; ++i) ping_batch += "{\"cmd\":\"config\"}\n";
    // Write until the socket is full (the master has stopped reading: it waits to write).
    for (auto until = clock_type::now() + 3s; clock_type::now() < until;) {
      if (send_all(hog.fd(), ping_batch, clock_type::now() + 200ms) != 0) break;
    }
  }
  for (int i = 0; i < 20; ++i) {
    auto started = clock_type::now();
    auto pong = control(server, {{"cmd", "ping"}}, control_timeout);
    auto took = std::chrono::duration_cast<std::chrono::milliseconds>(clock_type::now() - started);
    BOOST_REQUIRE_MESSAGE(pong.has_value(), "ping while a client does not read: " << pong.error().message);
    BOOST_TEST(took < 3000ms, "ping took " << took.count() << " ms while a client does not read");
    auto response = http_get(unix_endpoint(server), "/", request_timeout);
    BOOST_TEST((response && response->status == 200u));
  }
  hog.close();

  // Many connections at once, each abandoned without a word.
  {
    std::vector<raw_socket> idle;
    for (int i = 0; i < 100; ++i) idle.push_back(connect_raw(control_endpoint));
    auto pong = control(server, {{"cmd", "ping"}}, control_timeout);
    // Answered, or refused with an error line by the cap: never silence or garbage.
    BOOST_TEST((pong.has_value() || prefork::is_remote(pong.error())),
               "ping with 100 idle control connections: " << pong.error().code << " " << pong.error().message);
  }
  // The master notices the closed connections a moment later: until then it may still
  // refuse a 65th connection.
  auto pong = control(server, {{"cmd", "ping"}}, control_timeout);
  for (auto until = clock_type::now() + 5s; !pong && clock_type::now() < until;) {
    std::this_thread::sleep_for(50ms);
    pong = control(server, {{"cmd", "ping"}}, control_timeout);
  }
  BOOST_REQUIRE_MESSAGE(pong.has_value(), "ping after the abuse: " << pong.error().message);
  BOOST_TEST(json::serialize(*pong) == "\"pong\"");
  BOOST_TEST(server.running());
  require_healthy(server, workers);
}

BOOST_AUTO_TEST_SUITE_END()
