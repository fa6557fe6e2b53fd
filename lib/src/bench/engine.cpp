// The load engine of prefork-bench (run_bench): resolves the target, then runs one
// load_thread per thread (each with an epoll instance and a fixed array of connection
// slots) and merges their results. Everything a request needs lives in its slot, so a
// request costs system calls and no allocation.
#include "prefork/bench.hpp"

#include "bench/load_thread.hpp"

#include <netdb.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstring>
#include <memory>
#include <system_error>
#include <thread>

namespace prefork {
namespace {

using detail::bench::clock_type;
using detail::bench::load_thread;
using detail::bench::target_address;
using detail::bench::time_point;

boost::system::result<target_address, std::string> resolve(const bench_options& options) {
  target_address target;
  if (options.target == bench_options::target_kind::unix_path) {
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    if (options.unix_path.size() >= sizeof(address.sun_path)) return std::string("socket path too long");
    std::memcpy(address.sun_path, options.unix_path.data(), options.unix_path.size());
    std::memcpy(&target.storage, &address, sizeof(address));
    target.size = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + options.unix_path.size() + 1);
    target.family = AF_UNIX;
    return target;
  }
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* found = nullptr;
  const auto port = std::to_string(options.tcp_port);
  if (const int rc = getaddrinfo(options.tcp_host.c_str(), port.c_str(), &hints, &found); rc != 0) {
    return "cannot resolve " + options.tcp_host + ": " + gai_strerror(rc);
  }
  std::memcpy(&target.storage, found->ai_addr, found->ai_addrlen);
  target.size = found->ai_addrlen;
  target.family = found->ai_family;
  freeaddrinfo(found);
  return target;
}

std::string build_request(std::string_view path, const bench_options& options) {
  std::string request = "GET ";
  request.append(path).append(" HTTP/1.1\r\nHost: ").append(options.host_header).append("\r\n");
  if (options.mode == bench_mode::close) request.append("Connection: close\r\n");
  request.append("\r\n");
  return request;
}

// Enough descriptors for every connection (plus stdio and epoll), if the hard limit allows.
void raise_descriptor_limit(int connections) {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return;
  const rlim_t wanted = static_cast<rlim_t>(connections) + 64;
  if (limit.rlim_cur >= wanted) return;
  limit.rlim_cur = std::min(wanted, limit.rlim_max);
  setrlimit(RLIMIT_NOFILE, &limit);
}

}  // namespace

std::uint64_t bench_result::total_errors() const noexcept {
  std::uint64_t total = 0;
  for (const auto count : errors) total += count;
  return total;
}

boost::system::result<bench_result, std::string> run_bench(const bench_options& options) {
  auto target = resolve(options);
  if (!target) return target.error();
  raise_descriptor_limit(options.connections);
  const auto fast_request = build_request(options.path, options);
  const auto slow_request = options.mix ? build_request(options.mix->path, options) : fast_request;

  const auto threads = static_cast<std::size_t>(options.threads);
  const auto connections = static_cast<std::size_t>(options.connections);
  std::vector<std::unique_ptr<load_thread>> loads;
  for (std::size_t i = 0; i < threads; ++i) {
    const int share = static_cast<int>(connections / threads + (i < connections % threads ? 1 : 0));
    std::optional<std::uint64_t> quota;
    if (options.requests) quota = *options.requests / threads + (i < *options.requests % threads ? 1 : 0);
    loads.push_back(std::make_unique<load_thread>(options, *target, fast_request, slow_request, share, quota));
    if (auto opened = loads.back()->open(); !opened) return opened.error();
  }

  const auto started = clock_type::now();
  const auto end = options.duration_s ? started + std::chrono::duration_cast<clock_type::duration>(
                                                      std::chrono::duration<double>(*options.duration_s))
                                      : time_point::max();
  std::vector<std::thread> running;
  std::vector<time_point> finished(threads);
  try {
    for (std::size_t i = 0; i < threads; ++i) {
      running.emplace_back([&loads, &finished, end, i] {
        loads[i]->run(end);
        finished[i] = clock_type::now();
      });
    }
  } catch (const std::system_error& error) {
    for (auto& thread : running) thread.join();  // they end by -d/-n like any run
    return std::string("cannot start a thread: ") + error.what();
  }
  for (auto& thread : running) thread.join();

  bench_result result;
  result.mode = options.mode;
  result.connections = options.connections;
  result.threads = options.threads;
  const auto last = *std::max_element(finished.begin(), finished.end());
  result.duration_s = std::chrono::duration<double>(last - started).count();
  for (const auto& load : loads) {
    const auto& part = load->result();
    result.requests += part.requests;
    result.slow_requests += part.slow_requests;
    for (std::size_t k = 0; k < bench_error_count; ++k) result.errors[k] += part.errors[k];
    result.reconnects += part.reconnects;
    result.connect_retries += part.connect_retries;
    result.unfinished += part.unfinished;
    result.latency.merge(part.latency);
    result.fast_latency.merge(part.fast_latency);
    result.slow_latency.merge(part.slow_latency);
  }
  return result;
}

}  // namespace prefork
