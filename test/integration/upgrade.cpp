// USR2 upgrade under load (SPEC sections 2, 3 and 7): a new master started from the
// executable inherits the listeners and the control socket, its workers serve, the old
// master drains and exits 0, and no request fails.
//
// The new master is a child of the old one; when the old one exits it is re-parented to the
// nearest child subreaper, which this test makes itself, so that it can wait for it.
#include "prefork/testing.hpp"
#include "support/http_client.hpp"
#include "support/json_fields.hpp"
#include "support/lifecycle.hpp"
#include "support/load.hpp"
#include "support/procfs.hpp"
#include "support/server_helpers.hpp"

#include <boost/json/serialize.hpp>
#include <boost/test/unit_test.hpp>

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <string>
#include <string_view>

using namespace prefork::test_support;
using namespace std::chrono_literals;
namespace json = boost::json;
namespace fs = std::filesystem;

namespace {

// Kills and reaps the successor master on every path (it outlives the server's master), and reaps its workers, which
// are re-parented here if it dies first.
class successor_guard {
 public:
  successor_guard() = default;
  ~successor_guard() {
    if (pid_ <= 0) return;
    if (process_alive(pid_)) ::kill(pid_, SIGKILL);
    if (!wait_child(pid_, 5s) && process_alive(pid_)) BOOST_ERROR("the new master " << pid_ << " did not die");
    for (pid_t worker : workers_) {
      if (process_alive(worker)) ::kill(worker, SIGKILL);
      (void)wait_child(worker, 2s);  // nullopt when it was not re-parented here
    }
  }
  successor_guard(const successor_guard&) = delete;
  successor_guard& operator=(const successor_guard&) = delete;

  void set(pid_t pid) { pid_ = pid; }
  void track_workers(const std::vector<pid_t>& workers) {
    workers_.insert(workers_.end(), workers.begin(), workers.end());
  }
  /// The successor was reaped: nothing left to do for it.
  void reaped() { pid_ = -1; }

 private:
  pid_t pid_ = -1;
  std::vector<pid_t> workers_;
};

std::string trimmed(std::string text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  return text;
}

std::vector<json::object> lines_of_pid(const std::vector<json::object>& lines, pid_t pid) {
  std::vector<json::object> result;
  for (const auto& line : lines) {
    if (log_int(line, "pid") == pid) result.push_back(line);
  }
  return result;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(upgrade)

BOOST_AUTO_TEST_CASE(usr2_under_load_hands_over_to_a_new_master) {
  constexpr int workers = 2;
  subreaper_scope subreaper;
  auto options = boost_test_options();
  options.config["app"] = "testbed";
  options.config["workers"] = workers;
  options.config["graceful_timeout"] = 20;
  options.config["pid_file"] = "preforkd.pid";
  prefork::testing::server server(std::move(options));
  successor_guard successor;  // destroyed before `server`, which then finds the group empty
  const pid_t old_master = server.pid();
  const fs::path socket_path = unix_endpoint(server).path;
  const fs::path pid_file = server.directory() / "preforkd.pid";
  BOOST_TEST(trimmed(prefork::testing::read_file(pid_file)) == std::to_string(old_master));
  auto old_workers = worker_pids(server);

  load_options per_request;
  per_request.target = unix_endpoint(server);
  per_request.clients = 12;
  per_request.request_timeout = 10s;
  load_generator load(per_request);
  load_options keep_alive_options = per_request;
  keep_alive_options.clients = 4;
  keep_alive_options.mode = load_mode::keep_alive;
  load_generator keep_alive(keep_alive_options);
  // Mostly idle keep-alive connections, reused every 10 ms or so.
  paced_keep_alive_clients idle_clients(unix_endpoint(server), 4, 10ms);
  BOOST_REQUIRE_MESSAGE(load.wait_successes(300, 30s), load.snapshot().summary());

  server.signal(SIGUSR2);
  auto started = server.wait_for_log("upgrade: new master started", 30s);
  BOOST_REQUIRE_MESSAGE(started.has_value(), "no \"upgrade: new master started\"\n" << server.log_tail(40));
  const auto new_master = static_cast<pid_t>(event_pid(*started).value_or(-1));
  BOOST_REQUIRE_MESSAGE(new_master > 0 && new_master != old_master, json::serialize(*started));
  successor.set(new_master);

  auto handed_over = server.wait_for_log("upgrade: new master ready; this master drains and exits", 60s);
  BOOST_REQUIRE_MESSAGE(handed_over.has_value(), "the new master never got ready\n" << server.log_tail(40));
  successor.track_workers(children_of(new_master));
  auto old_status = server.wait_exit(60s);
  BOOST_REQUIRE_MESSAGE(old_status.has_value(), "the old master did not exit\n" << server.log_tail(40));
  BOOST_TEST(old_status->code == 0, old_status->to_string());
  BOOST_TEST(old_status->signal == 0, old_status->to_string());
  for (pid_t worker : old_workers) BOOST_TEST(!process_alive(worker), "old worker " << worker << " still alive");

  // The new master lives on, re-parented here, and serves.
  BOOST_REQUIRE_MESSAGE(process_alive(new_master), "the new master is gone\n" << server.log_tail(40));
  BOOST_TEST(parent_of(new_master).value_or(-1) == ::getpid());
  auto so_far = load.snapshot().successes;
  BOOST_REQUIRE_MESSAGE(load.wait_successes(so_far + 300, 30s),
                        "load stalled after the upgrade: " << load.snapshot().summary());
  auto new_workers = children_of(new_master);
  successor.track_workers(new_workers);
  BOOST_TEST(new_workers.size() == static_cast<std::size_t>(workers));
  for (int i = 0; i < 4; ++i) {
    auto who = whoami(unix_endpoint(server), 5s);
    BOOST_REQUIRE_MESSAGE(who.has_value(), "whoami: " << who.error().message());
    BOOST_TEST(std::binary_search(new_workers.begin(), new_workers.end(), who->pid),
               "/whoami pid " << who->pid << " is not a worker of the new master " << new_master);
  }
  BOOST_TEST(fs::is_socket(fs::symlink_status(socket_path)), "the socket file is gone");
  // The harness's kept control connection went to the old master, which closed it: a
  // read-only request is sent again, to the new master.
  auto status = server.status();
  BOOST_TEST(json_int(status, "pid").value_or(-1) == new_master, json::serialize(status));
  BOOST_TEST(trimmed(prefork::testing::read_file(pid_file)) == std::to_string(new_master));

  auto result = load.stop();
  auto keep_alive_result = keep_alive.stop();
  auto idle_result = idle_clients.stop();
  auto stats = server.stats();
  BOOST_TEST_MESSAGE("USR2 under load: " << result.summary() << "; keep-alive " << keep_alive_result.summary()
                                         << "; new master stats " << json::serialize(stats));
  BOOST_TEST(result.total_failures() == 0u, result.summary());
  BOOST_TEST(keep_alive_result.total_failures() == 0u, keep_alive_result.summary());
  BOOST_TEST_MESSAGE("idle-paced keep-alive clients: " << idle_result.summary());
  BOOST_TEST(idle_result.total_failures() == 0u, idle_result.summary());
  BOOST_TEST(json_int(stats, "lost").value_or(-1) == 0);
  auto old_stopped = lines_of_pid(server.find_log("stopped"), old_master);
  BOOST_REQUIRE_EQUAL(old_stopped.size(), 1u);
  BOOST_TEST((log_int(old_stopped[0], "lost") == 0), json::serialize(old_stopped[0]));

  // TERM ends the new master like any other: exit 0, nothing of the group left.
  BOOST_REQUIRE(::kill(new_master, SIGTERM) == 0);
  auto new_status = wait_child(new_master, 30s);
  BOOST_REQUIRE_MESSAGE(new_status.has_value(), "the new master did not exit after TERM\n" << server.log_tail(40));
  successor.reaped();
  BOOST_TEST(new_status->code == 0, new_status->to_string());
  auto new_stopped = lines_of_pid(server.find_log("stopped"), new_master);
  BOOST_REQUIRE_EQUAL(new_stopped.size(), 1u);
  BOOST_TEST((log_int(new_stopped[0], "lost") == 0), json::serialize(new_stopped[0]));
  BOOST_TEST(wait_group_gone(server.pid()));
  BOOST_TEST(!fs::exists(fs::symlink_status(socket_path)), "the new master left the socket file behind");
  BOOST_TEST(!fs::exists(fs::symlink_status(pid_file)), "the new master left the pid file behind");
}

BOOST_AUTO_TEST_SUITE_END()
