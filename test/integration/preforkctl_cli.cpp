// The real preforkctl binary against a real preforkd (SPEC section 3): what it prints for
// people and with --json, its exit statuses (0 done, 1 the master said no, 2 usage, 3 no
// master), and wait-ready for a harness that calls it before the socket exists.
#include "prefork/testing.hpp"
#include "support/json_fields.hpp"
#include "support/programs.hpp"
#include "support/server_helpers.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/test/unit_test.hpp>

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <memory>
#include <sstream>
#include <thread>

using namespace prefork::test_support;
using prefork::testing::read_file;
using prefork::testing::run_result;
using prefork::testing::temp_directory;
using namespace std::chrono_literals;
namespace fs = std::filesystem;
namespace json = boost::json;
using clock_type = std::chrono::steady_clock;

namespace {

bool exits_with(const run_result& result, int code) {
  return result.status && result.status->signal == 0 && result.status->code == code;
}

// preforkctl -s <server's control socket> args...
run_result ctl(const prefork::testing::server& server, std::vector<std::string> args,
               std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
  args.insert(args.begin(), {"-s", server.control_path().string()});
  return run_preforkctl(args, server.directory(), timeout);
}

// Parses stdout as one JSON value; fails the test when it is not.
json::value json_out(const run_result& result) {
  boost::system::error_code ec;
  auto value = json::parse(result.out, ec);
  std::string why = ec ? "stdout is not JSON (" + ec.message() + "):\n" + result.describe() : std::string();
  BOOST_REQUIRE_MESSAGE(!ec, why);
  return value;
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty()) lines.push_back(line);
  }
  return lines;
}

std::vector<std::string> words_of(const std::string& line) {
  std::vector<std::string> words;
  std::istringstream in(line);
  std::string word;
  while (in >> word) words.push_back(word);
  return words;
}

prefork::testing::server_options testbed_options() {
  auto options = boost_test_options();
  options.config["app"] = "testbed";
  return options;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(preforkctl_cli)

BOOST_AUTO_TEST_CASE(ping_for_people_and_as_json) {
  prefork::testing::server server(testbed_options());
  auto ping = ctl(server, {"ping"});
  BOOST_TEST(exits_with(ping, 0), ping.describe());
  BOOST_TEST(ping.out == "pong\n", ping.describe());
  auto json_ping = ctl(server, {"--json", "ping"});
  BOOST_TEST(exits_with(json_ping, 0), json_ping.describe());
  BOOST_TEST(json_ping.out == "\"pong\"\n", json_ping.describe());
  // -c takes the socket from the config file, relative to the working directory.
  auto by_config = run_preforkctl({"-c", "preforkd.json", "ping"}, server.directory());
  BOOST_TEST(exits_with(by_config, 0), by_config.describe());
  BOOST_TEST(by_config.out == "pong\n", by_config.describe());
}

BOOST_AUTO_TEST_CASE(status_workers_stats_and_config) {
  prefork::testing::server server(testbed_options());

  auto status = ctl(server, {"status"});
  BOOST_TEST(exits_with(status, 0), status.describe());
  BOOST_TEST(status.out.find("running") != std::string::npos, status.describe());
  BOOST_TEST(status.out.find(std::to_string(server.pid())) != std::string::npos, status.describe());
  auto json_status = ctl(server, {"--json", "status"});
  BOOST_REQUIRE_MESSAGE(exits_with(json_status, 0), json_status.describe());
  auto status_value = json_out(json_status);
  BOOST_REQUIRE(status_value.is_object());
  BOOST_TEST((json_int(status_value.as_object(), "pid") == server.pid()), json_status.out);
  BOOST_TEST(json_string(status_value.as_object(), "state") == "running", json_status.out);

  // workers: a header and one row per worker, with its pid and state.
  auto workers = ctl(server, {"workers"});
  BOOST_REQUIRE_MESSAGE(exits_with(workers, 0), workers.describe());
  BOOST_TEST_MESSAGE("preforkctl workers:\n" << workers.out);
  auto rows = lines_of(workers.out);
  BOOST_REQUIRE_MESSAGE(rows.size() == 3u, "expected a header and 2 rows:\n" << workers.out);
  auto header = words_of(rows[0]);
  BOOST_TEST((std::find(header.begin(), header.end(), "ID") != header.end()), rows[0]);
  auto pid_column = std::find(header.begin(), header.end(), "PID") - header.begin();
  auto state_column = std::find(header.begin(), header.end(), "STATE") - header.begin();
  BOOST_REQUIRE_MESSAGE(
      pid_column < static_cast<long>(header.size()) && state_column < static_cast<long>(header.size()),
      "no PID or STATE column: " << rows[0]);
  auto children = worker_pids(server);
  for (std::size_t i = 1; i < rows.size(); ++i) {
    auto cells = words_of(rows[i]);
    BOOST_REQUIRE_MESSAGE(cells.size() == header.size(), "row and header differ in columns:\n" << workers.out);
    auto pid = std::stol(cells[static_cast<std::size_t>(pid_column)]);
    BOOST_TEST((std::find(children.begin(), children.end(), static_cast<pid_t>(pid)) != children.end()),
               "row " << i << " shows pid " << pid << ", not a worker");
    BOOST_TEST(cells[static_cast<std::size_t>(state_column)] == "ready", rows[i]);
  }
  auto json_workers = ctl(server, {"--json", "workers"});
  BOOST_REQUIRE_MESSAGE(exits_with(json_workers, 0), json_workers.describe());
  auto workers_value = json_out(json_workers);
  BOOST_REQUIRE(workers_value.is_array());
  BOOST_TEST(workers_value.as_array().size() == 2u, json_workers.out);

  auto stats = ctl(server, {"stats"});
  BOOST_TEST(exits_with(stats, 0), stats.describe());
  BOOST_TEST(stats.out.find("requests") != std::string::npos, stats.describe());
  auto json_stats = ctl(server, {"--json", "stats"});
  BOOST_REQUIRE_MESSAGE(exits_with(json_stats, 0), json_stats.describe());
  auto stats_value = json_out(json_stats);
  BOOST_REQUIRE(stats_value.is_object());
  BOOST_TEST((json_int(stats_value.as_object(), "lost") == 0), json_stats.out);
  BOOST_TEST((json_int(stats_value.as_object(), "requests") >= 0), json_stats.out);

  auto config = ctl(server, {"--json", "config"});
  BOOST_REQUIRE_MESSAGE(exits_with(config, 0), config.describe());
  auto config_value = json_out(config);
  BOOST_REQUIRE(config_value.is_object());
  BOOST_TEST((json_int(config_value.as_object(), "workers") == 2), config.out);
  BOOST_TEST(json_string(config_value.as_object(), "app") == "testbed", config.out);
  auto config_text = ctl(server, {"config"});
  BOOST_TEST(exits_with(config_text, 0), config_text.describe());
  BOOST_TEST(config_text.out.find("testbed") != std::string::npos, config_text.describe());
}

BOOST_AUTO_TEST_CASE(commands_that_act) {
  prefork::testing::server server(testbed_options());

  auto scale = ctl(server, {"scale", "3"});
  BOOST_TEST(exits_with(scale, 0), scale.describe());
  BOOST_TEST(scale.out.find('3') != std::string::npos, scale.describe());
  std::string why;
  BOOST_TEST(wait_settled(server, 3, 20s, &why), why);
  auto json_scale = ctl(server, {"--json", "scale", "2"});
  BOOST_REQUIRE_MESSAGE(exits_with(json_scale, 0), json_scale.describe());
  BOOST_TEST((json_out(json_scale) == json::value(json::object{{"desired", 2}})), json_scale.out);
  BOOST_REQUIRE_MESSAGE(wait_settled(server, 2, 20s, &why), why);

  auto reload = ctl(server, {"--json", "reload", "--wait"}, 90s);
  BOOST_REQUIRE_MESSAGE(exits_with(reload, 0), reload.describe());
  BOOST_TEST((json_out(reload) == json::value(json::object{{"generation", 2}})), reload.out);
  auto reload_text = ctl(server, {"reload", "--wait"}, 90s);
  BOOST_TEST(exits_with(reload_text, 0), reload_text.describe());
  BOOST_TEST(reload_text.out.find('3') != std::string::npos, reload_text.describe());
  BOOST_REQUIRE_MESSAGE(wait_settled(server, 2, 20s, &why), why);

  auto workers = server.workers();
  BOOST_REQUIRE(!workers.empty());
  auto id = json_int(workers.front().as_object(), "id");
  auto pid = json_int(workers.front().as_object(), "pid");
  BOOST_REQUIRE(id && pid);
  const std::string id_text = std::to_string(*id);
  auto pause = ctl(server, {"pause-worker", id_text});
  BOOST_TEST(exits_with(pause, 0), pause.describe());
  auto resume = ctl(server, {"resume-worker", id_text});
  BOOST_TEST(exits_with(resume, 0), resume.describe());
  auto reopen = ctl(server, {"reopen-logs"});
  BOOST_TEST(exits_with(reopen, 0), reopen.describe());

  std::this_thread::sleep_for(1500ms);  // past restart.min_uptime_ms: the victim does not "die young"
  auto kill = ctl(server, {"--json", "kill-worker", id_text, "--signal", "KILL"});
  BOOST_REQUIRE_MESSAGE(exits_with(kill, 0), kill.describe());
  BOOST_TEST((json_out(kill) == json::value(json::object{{"pid", *pid}})), kill.out);
  BOOST_TEST(wait_settled(server, 2, 20s, &why), "no replacement after kill-worker: " << why);
}

BOOST_AUTO_TEST_CASE(a_master_error_exits_1) {
  prefork::testing::server server(testbed_options());
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"kill-worker", "999"},
        std::vector<std::string>{"kill-worker", "999", "--signal", "KILL"},
        std::vector<std::string>{"pause-worker", "999"}, std::vector<std::string>{"resume-worker", "999"}}) {
    auto result = ctl(server, args);
    BOOST_TEST(exits_with(result, 1), result.describe());
    BOOST_TEST(result.err.find("not_found") != std::string::npos, result.describe());
    BOOST_TEST(result.out.empty(), result.describe());
  }
  auto json_result = ctl(server, {"--json", "kill-worker", "999"});
  BOOST_TEST(exits_with(json_result, 1), json_result.describe());
  BOOST_TEST(server.running());
}

BOOST_AUTO_TEST_CASE(usage_errors_exit_2) {
  temp_directory dir;
  const std::string socket = (dir / "ctl.sock").string();
  const std::vector<std::vector<std::string>> cases{
      {},
      {"-s", socket},
      {"-s", socket, "frobnicate"},
      {"-s", socket, "scale"},
      {"-s", socket, "scale", "zero"},
      {"-s", socket, "scale", "0"},
      {"-s", socket, "scale", "2", "3"},
      {"-s", socket, "kill-worker"},
      {"-s", socket, "kill-worker", "one"},
      {"-s", socket, "kill-worker", "1", "--signal", "HUP"},
      {"-s", socket, "stop", "--wait"},
      {"-s", socket, "ping", "--bogus"},
      {"-s", socket, "-c", "preforkd.json", "ping"},
      {"-s"},
      {"-s", socket, "wait-ready", "--timeout", "soon"},
  };
  for (const auto& args : cases) {
    auto result = run_preforkctl(args, dir.path());
    std::string shown;
    for (const auto& arg : args) shown += " " + arg;
    BOOST_TEST(exits_with(result, 2), "preforkctl" << shown << ": " << result.describe());
    BOOST_TEST(!result.err.empty(), "preforkctl" << shown << " printed no message");
  }
  auto help = run_preforkctl({"--help"}, dir.path());
  BOOST_TEST(exits_with(help, 0), help.describe());
  BOOST_TEST(help.out.find("wait-ready") != std::string::npos, help.describe());
}

BOOST_AUTO_TEST_CASE(no_master_exits_3) {
  temp_directory dir;
  const std::string absent = (dir / "absent.sock").string();
  for (const char* command : {"ping", "status", "workers", "stop"}) {
    auto result = run_preforkctl({"-s", absent, command}, dir.path());
    BOOST_TEST(exits_with(result, 3), "preforkctl -s absent.sock " << command << ": " << result.describe());
    BOOST_TEST(!result.err.empty());
  }
  // A socket file nobody accepts on (a master that died): refused, also 3.
  const fs::path stale = dir / "stale.sock";
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  BOOST_REQUIRE(fd >= 0);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::strncpy(address.sun_path, stale.c_str(), sizeof address.sun_path - 1);
  BOOST_REQUIRE(::bind(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) == 0);
  ::close(fd);
  auto refused = run_preforkctl({"-s", stale.string(), "ping"}, dir.path());
  BOOST_TEST(exits_with(refused, 3), refused.describe());
  // The default socket path, relative to the working directory, does not exist here.
  auto by_default = run_preforkctl({"ping"}, dir.path());
  BOOST_TEST(exits_with(by_default, 3), by_default.describe());
}

BOOST_AUTO_TEST_CASE(wait_ready_started_before_the_socket_exists) {
  temp_directory outputs;
  std::unique_ptr<prefork::testing::process> waiter;
  bool waiting_before_start = false;
  auto options = testbed_options();
  // The waiter's wait-ready must be what sees the workers ready, not the harness.
  options.wait = prefork::testing::start_wait::no_wait;
  options.prepare = [&](const fs::path& dir) {
    // Started before preforkd: neither the socket nor the master exist yet.
    prefork::testing::process_options waiter_options;
    waiter_options.arguments = {"-s", (dir / "ctl.sock").string(), "wait-ready", "--timeout", "60"};
    waiter_options.directory = dir;
    waiter_options.stdout_file = outputs / "stdout.log";
    waiter_options.stderr_file = outputs / "stderr.log";
    waiter = std::make_unique<prefork::testing::process>(preforkctl_path(), waiter_options);
    std::this_thread::sleep_for(300ms);
    waiting_before_start = waiter->running() && !fs::exists(dir / "ctl.sock");
  };
  prefork::testing::server server(std::move(options));
  BOOST_REQUIRE(waiter != nullptr);
  BOOST_TEST(waiting_before_start,
             "wait-ready did not wait for a master that was not started yet: " << read_file(outputs / "stderr.log"));
  auto status = waiter->wait_exit(90s);
  BOOST_REQUIRE_MESSAGE(status.has_value(), "wait-ready did not return within 90 s\n" << server.log_tail(40));
  BOOST_TEST(status->code == 0, status->to_string() << "\nstdout: " << read_file(outputs / "stdout.log")
                                                    << "\nstderr: " << read_file(outputs / "stderr.log"));
  BOOST_TEST(read_file(outputs / "stdout.log") == "ready\n");
  BOOST_TEST(waiter->wait_group_gone(2s), "wait-ready left processes behind: " << waiter->describe_members());
  // Once it returned, every desired worker is ready.
  auto counts = server.status().at("workers").as_object();
  BOOST_TEST((json_int(counts, "ready") == json_int(counts, "desired")), json::serialize(counts));
  BOOST_TEST((json_int(counts, "desired") == 2), json::serialize(counts));

  // And against a master that is already ready, it returns at once.
  auto again = ctl(server, {"--json", "wait-ready", "--timeout", "10"});
  BOOST_TEST(exits_with(again, 0), again.describe());
  BOOST_TEST(json_out(again).is_object(), again.out);
}

BOOST_AUTO_TEST_CASE(wait_ready_times_out_without_a_master) {
  temp_directory dir;
  auto started = clock_type::now();
  auto result = run_preforkctl({"-s", (dir / "ctl.sock").string(), "wait-ready", "--timeout", "1"}, dir.path(), 30s);
  auto took = std::chrono::duration_cast<std::chrono::milliseconds>(clock_type::now() - started);
  BOOST_TEST(exits_with(result, 1), result.describe());
  BOOST_TEST(result.err.find("timed out") != std::string::npos, result.describe());
  BOOST_TEST(took.count() >= 900, "wait-ready --timeout 1 gave up after " << took.count() << " ms");
}

BOOST_AUTO_TEST_CASE(stop_and_stop_fast_exit_0) {
  for (const bool fast : {false, true}) {
    BOOST_TEST_CONTEXT((fast ? "stop --fast" : "stop")) {
      prefork::testing::server server(testbed_options());
      std::vector<std::string> args{"stop"};
      if (fast) args.push_back("--fast");
      auto stop = ctl(server, args);
      BOOST_TEST(exits_with(stop, 0), stop.describe());
      BOOST_TEST(stop.out.find("stopping") != std::string::npos, stop.describe());
      auto status = server.wait_exit(30s);
      BOOST_REQUIRE_MESSAGE(status.has_value(), "preforkd did not exit\n" << server.log_tail(40));
      BOOST_TEST(status->code == 0, status->to_string());
      BOOST_TEST(wait_group_gone(server.pid()));
      auto after = ctl(server, {"ping"});
      BOOST_TEST(exits_with(after, 3), "ping after stop: " << after.describe());
    }
  }
}

BOOST_AUTO_TEST_SUITE_END()
