// Descriptor and memory hygiene under sustained load (SPEC section 7): after 100 000
// connections (one request each) the master and every worker hold exactly the descriptors
// they held before, and their resident memory has not grown without bound.
#include "prefork/testing.hpp"
#include "support/load.hpp"
#include "support/server_helpers.hpp"

#include <boost/json/serialize.hpp>
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

using namespace prefork::test_support;
using namespace std::chrono_literals;
namespace fs = std::filesystem;
namespace json = boost::json;
using clock_type = std::chrono::steady_clock;

namespace {

// The descriptors of `pid` as "fd -> target" ("socket:[123]", "/dev/null", ...).
std::map<int, std::string> descriptors_of(pid_t pid) {
  std::map<int, std::string> result;
  std::error_code ec;
  for (fs::directory_iterator it(fs::path("/proc") / std::to_string(pid) / "fd", ec), end; !ec && it != end;
       it.increment(ec)) {
    std::error_code link_ec;
    auto target = fs::read_symlink(it->path(), link_ec);
    result[std::stoi(it->path().filename().string())] = link_ec ? "?" : target.string();
  }
  return result;
}

// VmRSS of `pid` in bytes; 0 when it is gone.
std::size_t resident_bytes(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.starts_with("VmRSS:")) return std::stoull(line.substr(6)) * 1024;
  }
  return 0;
}

std::string describe(const std::map<int, std::string>& descriptors) {
  std::ostringstream text;
  for (const auto& [fd, target] : descriptors) text << " " << fd << "=" << target;
  return text.str();
}

// How many connections: 100 000 by default; PREFORK_HYGIENE_CONNECTIONS overrides it (a
// slow sanitizer build may use fewer).
std::uint64_t connection_count() {
  if (const char* text = std::getenv("PREFORK_HYGIENE_CONNECTIONS")) return std::strtoull(text, nullptr, 10);
  return 100000;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(hygiene_fd)

BOOST_AUTO_TEST_CASE(connections_leave_no_descriptor_and_memory_stays_bounded) {
  const std::uint64_t total = connection_count();
  const std::uint64_t warm_up = std::min<std::uint64_t>(5000, total / 10);
  auto options = boost_test_options();
  options.config["workers"] = 2;
  prefork::testing::server server(std::move(options));
  // The harness's own control connection would be one more descriptor in the master.
  server.disconnect();
  const pid_t master = server.pid();
  const auto workers = worker_pids(server);
  BOOST_REQUIRE_EQUAL(workers.size(), 2u);
  std::vector<pid_t> processes = workers;
  processes.push_back(master);

  // The quiet state: no client connected, nothing in flight (two equal snapshots in a row).
  auto quiet_descriptors = [&](std::chrono::milliseconds timeout) {
    std::map<pid_t, std::map<int, std::string>> previous;
    std::map<pid_t, std::map<int, std::string>> current;
    for (auto until = clock_type::now() + timeout;;) {
      current.clear();
      for (pid_t pid : processes) current[pid] = descriptors_of(pid);
      if (current == previous || clock_type::now() > until) return current;
      previous = current;
      std::this_thread::sleep_for(100ms);
    }
  };
  const auto before = quiet_descriptors(5s);

  load_options load_config;
  load_config.target = unix_endpoint(server);
  load_config.clients = 8;
  load_config.mode = load_mode::connection_per_request;
  auto started = clock_type::now();
  std::map<pid_t, std::size_t> rss_warm;
  load_result result;
  bool done = false;
  {
    load_generator load(load_config);
    // Memory is compared with its size after a warm-up: allocators and caches reach their
    // steady size in the first few thousand connections.
    BOOST_REQUIRE_MESSAGE(load.wait_successes(warm_up, 60s), "warm-up: " << load.snapshot().summary());
    for (pid_t pid : processes) rss_warm[pid] = resident_bytes(pid);
    done = load.wait_successes(total, 120s);
    result = load.stop();
  }
  auto elapsed = std::chrono::duration<double>(clock_type::now() - started).count();
  BOOST_TEST_MESSAGE("hygiene_fd: " << result.summary() << " in " << elapsed << " s ("
                                    << static_cast<double>(result.successes) / elapsed << " connections/s)");
  BOOST_REQUIRE_MESSAGE(done, "fewer than " << total << " connections in 120 s: " << result.summary());
  BOOST_TEST(result.total_failures() == 0u, result.summary());
  BOOST_TEST((worker_pids(server) == workers), "a worker was replaced during the run");

  // Workers close a connection after answering and the master closes its copy on the
  // acknowledgement, both a moment after the client has its answer: wait for quiet.
  const auto after = quiet_descriptors(5s);
  for (pid_t pid : processes) {
    const auto& start = before.at(pid);
    const auto& end = after.at(pid);
    const char* role = pid == master ? "master" : "worker";
    BOOST_TEST_MESSAGE(role << " " << pid << ": " << start.size() << " descriptors before, " << end.size() << " after");
    BOOST_TEST(end.size() == start.size(),
               role << " " << pid << " held " << start.size() << " descriptors before " << total << " connections and "
                    << end.size() << " after:\n before:" << describe(start) << "\n after:" << describe(end));
  }

  // Memory: after warm-up vs the end, per process.
  for (pid_t pid : processes) {
    const std::size_t warm = rss_warm.at(pid);
    const std::size_t end = resident_bytes(pid);
    BOOST_TEST_MESSAGE("process " << pid << " RSS " << warm / 1024 << " KiB after warm-up, " << end / 1024
                                  << " KiB at the end");
#if defined(__SANITIZE_ADDRESS__)
    // AddressSanitizer keeps freed memory in quarantine (256 MiB by default): RSS says
    // nothing about leaks there (LeakSanitizer does).
    (void)end;
#else
    BOOST_TEST(end < 2 * warm + 8 * 1024 * 1024,
               "process " << pid << " grew from " << warm / 1024 << " KiB to " << end / 1024 << " KiB");
#endif
  }

  auto stats = control(server, {{"cmd", "stats"}}, 5s);
  BOOST_REQUIRE_MESSAGE(stats.has_value(), stats.error().message);
  BOOST_TEST_MESSAGE("stats: " << json::serialize(*stats));
  const auto& counters = stats->as_object();
  BOOST_TEST(counters.at("lost").to_number<std::uint64_t>() == 0u);
  BOOST_TEST(counters.at("worker_crashes").to_number<std::uint64_t>() == 0u);
  BOOST_TEST(counters.at("accepted").to_number<std::uint64_t>() >= total);
}

BOOST_AUTO_TEST_SUITE_END()
