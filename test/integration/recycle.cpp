// Recycling by max_requests under load (SPEC sections 2 and 7): workers are replaced one at
// a time, the replacement first, so that capacity never dips and no request fails.
#include "prefork/testing.hpp"
#include "support/json_fields.hpp"
#include "support/lifecycle.hpp"
#include "support/load.hpp"
#include "support/procfs.hpp"
#include "support/server_helpers.hpp"

#include <boost/json/serialize.hpp>
#include <boost/test/unit_test.hpp>

#include <signal.h>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <set>
#include <thread>

using namespace prefork::test_support;
using namespace std::chrono_literals;
namespace json = boost::json;

namespace {

// Samples, from its own thread until stopped, what the control socket says of the worker
// counts and how many children the master has.
class capacity_sampler {
 public:
  capacity_sampler(const prefork::testing::server& server, pid_t master) : server_(server), master_(master) {
    thread_ = std::thread([this] { run(); });
  }
  ~capacity_sampler() { stop(); }
  capacity_sampler(const capacity_sampler&) = delete;
  capacity_sampler& operator=(const capacity_sampler&) = delete;

  void stop() {
    stopping_ = true;
    if (thread_.joinable()) thread_.join();
  }

  int samples = 0;
  int failed_calls = 0;
  long long min_ready = 1 << 30;
  long long max_ready = -1;
  int below_desired = 0;  // samples with fewer ready than desired
  std::size_t min_children = 1 << 30;
  std::set<pid_t> pids_seen;
  std::string first_problem;

 private:
  void run() {
    while (!stopping_) {
      auto reply = control(server_, {{"cmd", "status"}}, 5s);
      auto children = children_of(master_);
      if (!reply || !reply->is_object()) {
        ++failed_calls;
        if (first_problem.empty()) first_problem = reply ? "status is not an object" : reply.error().message;
      } else {
        const auto& status = reply->as_object();
        long long ready = status_workers(status, "ready");
        long long desired = status_workers(status, "desired");
        ++samples;
        min_ready = std::min(min_ready, ready);
        max_ready = std::max(max_ready, ready);
        if (ready < desired) {
          ++below_desired;
          if (first_problem.empty()) first_problem = "status " + json::serialize(status.at("workers"));
        }
        min_children = std::min(min_children, children.size());
        pids_seen.insert(children.begin(), children.end());
      }
      std::this_thread::sleep_for(10ms);
    }
  }

  const prefork::testing::server& server_;
  pid_t master_;
  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

}  // namespace

BOOST_AUTO_TEST_SUITE(recycle)

BOOST_AUTO_TEST_CASE(max_requests_recycles_workers_under_load) {
  constexpr int workers = 2;
  constexpr int wanted_recycles = 6;
  auto options = boost_test_options();
  options.config["app"] = "testbed";
  options.config["workers"] = workers;
  options.config["max_requests"] = 50;
  options.config["max_requests_jitter"] = 10;
  options.config["graceful_timeout"] = 20;
  prefork::testing::server server(std::move(options));
  auto initial = worker_pids(server);

  capacity_sampler sampler(server, server.pid());
  // Requests of 20 ms: a few hundred a second, so that recycling goes on long enough for
  // the sampler to watch it (instant ones would recycle dozens of workers a second).
  load_options per_request;
  per_request.target = unix_endpoint(server);
  per_request.clients = 8;
  per_request.path = "/sleep?ms=20";
  per_request.expected_body.reset();
  per_request.request_timeout = 10s;
  load_generator load(per_request);
  load_options keep_alive_options = per_request;
  keep_alive_options.clients = 4;
  keep_alive_options.mode = load_mode::keep_alive;
  load_generator keep_alive(keep_alive_options);
  // Mostly idle keep-alive connections: a retiring worker hands them back.
  paced_keep_alive_clients idle_clients(unix_endpoint(server), 4, 10ms);

  long long recycled = 0;
  bool enough = wait_until(
      [&] {
        auto reply = control(server, {{"cmd", "stats"}}, 5s);
        if (reply && reply->is_object()) recycled = json_int(reply->as_object(), "worker_recycled").value_or(0);
        return recycled >= wanted_recycles;
      },
      60s, 20ms);
  auto result = load.stop();
  auto keep_alive_result = keep_alive.stop();
  auto idle_result = idle_clients.stop();
  sampler.stop();
  BOOST_REQUIRE_MESSAGE(enough, "only " << recycled << " recycles in 60 s; load " << result.summary() << "\n"
                                        << server.log_tail(40));

  std::string why;
  bool settled = wait_settled(server, workers, 30s, &why);
  BOOST_REQUIRE_MESSAGE(settled, "not settled after recycling: " << why << "\n" << server.log_tail(40));
  auto stats = server.stats();
  BOOST_TEST_MESSAGE("max_requests 50 under load: "
                     << result.summary() << "; keep-alive " << keep_alive_result.summary() << "; stats "
                     << json::serialize(stats) << "; " << sampler.samples << " status samples, ready "
                     << sampler.min_ready << ".." << sampler.max_ready << ", min children " << sampler.min_children
                     << ", " << sampler.pids_seen.size() << " worker pids seen");
  BOOST_TEST(result.total_failures() == 0u, result.summary());
  BOOST_TEST(keep_alive_result.total_failures() == 0u, keep_alive_result.summary());
  BOOST_TEST_MESSAGE("idle-paced keep-alive clients: " << idle_result.summary());
  BOOST_TEST(idle_result.total_failures() == 0u, idle_result.summary());
  BOOST_TEST(idle_result.successes > 0u);
  BOOST_TEST(json_int(stats, "lost").value_or(-1) == 0);
  BOOST_TEST(json_int(stats, "worker_crashes").value_or(-1) == 0);
  BOOST_TEST(json_int(stats, "worker_recycled").value_or(0) >= wanted_recycles);
  BOOST_TEST(server.find_log("recycling worker").size() >= static_cast<std::size_t>(wanted_recycles));

  // Capacity never dipped: the replacement is ready before the old worker retires.
  BOOST_TEST(sampler.samples >= 20, "too few samples: " << sampler.samples);
  BOOST_TEST(sampler.failed_calls == 0, sampler.first_problem);
  BOOST_TEST(sampler.min_ready >= 1);
  BOOST_TEST(sampler.below_desired == 0,
             sampler.below_desired << " of " << sampler.samples
                                   << " samples had fewer ready workers than desired: " << sampler.first_problem);
  BOOST_TEST(sampler.min_children >= static_cast<std::size_t>(workers));
  // One at a time: never more than one replacement beside the desired workers.
  BOOST_TEST(sampler.max_ready <= workers + 1);

  // Neither initial worker is left after this many recycles, and each recycled worker had
  // served at least max_requests (its count reaches the master with its progress reports).
  auto now = worker_pids(server);
  for (pid_t pid : initial)
    BOOST_TEST(!std::binary_search(now.begin(), now.end(), pid), "initial worker " << pid << " still there");
  std::vector<long long> served;
  for (const auto& line : server.find_log("recycling worker")) {
    served.push_back(log_int(line, "served").value_or(-1));
    BOOST_TEST(served.back() >= 50, json::serialize(line));
  }
  std::string served_text;
  for (auto count : served) served_text += std::to_string(count) + " ";
  BOOST_TEST_MESSAGE("requests served by recycled workers: " << served_text);

  server.signal(SIGTERM);
  auto status = server.wait_exit(30s);
  BOOST_REQUIRE_MESSAGE(status.has_value(), "no exit after TERM\n" << server.log_tail(40));
  BOOST_TEST(status->code == 0, status->to_string());
  auto stopped = server.find_log("stopped");
  BOOST_REQUIRE_EQUAL(stopped.size(), 1u);
  BOOST_TEST((log_int(stopped[0], "lost") == 0), json::serialize(stopped[0]));
  BOOST_TEST(wait_group_gone(server.pid()));
}

BOOST_AUTO_TEST_SUITE_END()
