// prefork::testing::process and run: any program a test starts beside a server, or runs
// once, in its own process group, with its output captured and nothing of it left behind.
#include "prefork/testing/process.hpp"

#include <boost/test/unit_test.hpp>

#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <string>
#include <thread>

using namespace std::chrono_literals;
namespace testing = prefork::testing;

namespace {

// /bin/sh -c `script`.
testing::process_options shell(const std::string& script) {
  testing::process_options options;
  options.arguments = {"-c", script};
  return options;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(testing_process)

BOOST_AUTO_TEST_CASE(run_captures_the_exit_code_and_both_outputs) {
  auto result = testing::run("/bin/sh", shell("echo to-out; echo to-err >&2; exit 3"), 10s);
  BOOST_REQUIRE(result.status.has_value());
  BOOST_TEST(result.status->code == 3);
  BOOST_TEST(result.status->signal == 0);
  BOOST_TEST(!result.succeeded());
  BOOST_TEST(result.out == "to-out\n");
  BOOST_TEST(result.err == "to-err\n");
  BOOST_TEST(result.left_behind.empty());
  BOOST_TEST(result.describe().find("exit 3") != std::string::npos, result.describe());
}

BOOST_AUTO_TEST_CASE(run_kills_a_command_past_its_timeout_with_its_group) {
  testing::temp_directory directory;
  // The command records its pid, then waits with a child of its own.
  auto options = shell("echo $$ > pid; sleep 60 & wait");
  options.directory = directory.path();
  const auto started = std::chrono::steady_clock::now();
  auto result = testing::run("/bin/sh", options, 300ms);
  BOOST_TEST(!result.status.has_value(), result.describe());
  BOOST_TEST((std::chrono::steady_clock::now() - started < 10s), "the timeout ended the run");
  const pid_t group = std::atoi(testing::read_file(directory / "pid").c_str());
  BOOST_REQUIRE(group > 0);
  BOOST_TEST(testing::group_members(group).empty());
}

BOOST_AUTO_TEST_CASE(run_reports_and_kills_what_a_command_leaves_behind) {
  testing::temp_directory directory;
  auto options = shell("echo $$ > pid; sleep 60 & echo started");
  options.directory = directory.path();
  auto result = testing::run("/bin/sh", options, 10s);
  BOOST_TEST(result.succeeded(), result.describe());
  BOOST_TEST(result.out == "started\n");
  BOOST_TEST(result.left_behind.find("(sleep)") != std::string::npos, result.describe());
  const pid_t group = std::atoi(testing::read_file(directory / "pid").c_str());
  BOOST_REQUIRE(group > 0);
  BOOST_TEST(testing::group_members(group).empty());
}

BOOST_AUTO_TEST_CASE(run_sets_the_directory_and_environment_and_hides_the_supervisor) {
  testing::temp_directory directory;
  ::setenv("NOTIFY_SOCKET", "/run/systemd/notify", 1);  // as under a systemd service
  auto options = shell(R"(pwd; echo "[$PREFORK_TEST_VALUE] [${NOTIFY_SOCKET-unset}]"; ls /proc/self/fd | wc -l)");
  options.directory = directory.path();
  options.environment = {{"PREFORK_TEST_VALUE", "forty two"}};
  auto result = testing::run("/bin/sh", options, 10s);
  ::unsetenv("NOTIFY_SOCKET");
  BOOST_TEST(result.succeeded(), result.describe());
  // pwd, then the variables, then the descriptors `ls` sees: 0, 1, 2 and the one it reads
  // /proc/self/fd with; none of the test's own.
  BOOST_TEST(result.out == directory.path().string() + "\n[forty two] [unset]\n4\n", result.describe());
}

BOOST_AUTO_TEST_CASE(a_missing_program_or_directory_is_an_error_naming_it) {
  BOOST_CHECK_EXCEPTION(
      testing::run("/nonexistent/program", {}, 1s), std::runtime_error, [](const std::runtime_error& e) {
        return std::string(e.what()).find("/nonexistent/program is not executable") != std::string::npos;
      });
  testing::process_options options;
  options.directory = "/nonexistent/directory";
  BOOST_CHECK_EXCEPTION(testing::process("/bin/true", options), std::runtime_error, [](const std::runtime_error& e) {
    BOOST_TEST_MESSAGE(e.what());
    return std::string(e.what()).find("/bin/true") != std::string::npos &&
           std::string(e.what()).find("No such file") != std::string::npos;
  });
}

BOOST_AUTO_TEST_CASE(activated_sockets_arrive_as_systemd_passes_them) {
  int pair[2];
  BOOST_REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) == 0);
  int other[2];
  BOOST_REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, other) == 0);
  // LISTEN_PID is the child's own pid; descriptors 3 and 4 are the sockets, in order.
  auto options = shell(R"sh(echo "$LISTEN_FDS $LISTEN_FDNAMES $([ "$LISTEN_PID" = $$ ] && echo own-pid)"
echo hello >&3; echo world >&4)sh");
  options.activation = testing::socket_activation{{pair[0], other[0]}, {"web", "admin"}};
  auto result = testing::run("/bin/sh", options, 10s);
  BOOST_TEST(result.succeeded(), result.describe());
  BOOST_TEST(result.out == "2 web:admin own-pid\n", result.describe());
  char buffer[16] = {};
  BOOST_TEST(::read(pair[1], buffer, sizeof buffer) == 6);
  BOOST_TEST(std::string(buffer, 6) == "hello\n");
  BOOST_TEST(::read(other[1], buffer, sizeof buffer) == 6);
  BOOST_TEST(std::string(buffer, 6) == "world\n");
  for (int fd : {pair[0], pair[1], other[0], other[1]}) ::close(fd);
}

BOOST_AUTO_TEST_CASE(a_background_process_is_signalled_and_reaped) {
  testing::temp_directory directory;
  testing::process_options options = shell("echo running; exec sleep 60");
  options.stdout_file = directory / "out";
  testing::process sleeper("/bin/sh", options);
  BOOST_TEST(sleeper.running());
  BOOST_TEST(!sleeper.wait_exit(50ms).has_value());
  BOOST_TEST(sleeper.signal(SIGTERM));
  auto status = sleeper.wait_exit(10s);
  BOOST_REQUIRE(status.has_value());
  BOOST_TEST(status->signal == SIGTERM);
  BOOST_TEST(!sleeper.running());
  BOOST_TEST(!sleeper.signal(SIGTERM), "a reaped process cannot be signalled");
  BOOST_TEST(testing::read_file(directory / "out") == "running\n");
  BOOST_TEST((sleeper.stop(SIGTERM, 1s) == *status), "stop() after the exit returns the same status");
}

BOOST_AUTO_TEST_CASE(stop_kills_a_leader_that_ignores_the_signal) {
  testing::temp_directory directory;
  auto options = shell("trap '' TERM; echo ready; exec sleep 60");  // exec keeps ignored signals
  options.stdout_file = directory / "out";
  testing::process stubborn("/bin/sh", options);
  const pid_t group = stubborn.pid();
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (testing::read_file(directory / "out").empty() && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(5ms);
  BOOST_REQUIRE(testing::read_file(directory / "out") == "ready\n");  // TERM is ignored from now on
  const auto status = stubborn.stop(SIGTERM, 300ms);
  BOOST_TEST(status.signal == SIGKILL, status.to_string());
  BOOST_TEST(testing::group_members(group).empty());
}

BOOST_AUTO_TEST_CASE(stop_reports_processes_that_outlive_the_leader) {
  testing::process leaky("/bin/sh", shell("(trap '' TERM; exec sleep 60) & exec sleep 60"));
  const pid_t group = leaky.pid();
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (leaky.members().size() < 2 && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(5ms);
  BOOST_REQUIRE_EQUAL(leaky.members().size(), 2u);
  BOOST_CHECK_EXCEPTION(leaky.stop(SIGTERM, 300ms), std::runtime_error, [](const std::runtime_error& e) {
    BOOST_TEST_MESSAGE(e.what());
    return std::string(e.what()).find("outlived") != std::string::npos &&
           std::string(e.what()).find("(sleep)") != std::string::npos;
  });
  BOOST_TEST(leaky.exit().value().signal == SIGTERM);
  BOOST_TEST(testing::group_members(group).empty());
}

BOOST_AUTO_TEST_CASE(the_destructor_kills_the_whole_group) {
  pid_t group = -1;
  {
    testing::process busy("/bin/sh", shell("sleep 60 & sleep 60 & wait"));
    group = busy.pid();
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (busy.members().size() < 3 && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(5ms);
    BOOST_REQUIRE_EQUAL(busy.members().size(), 3u);
  }
  BOOST_TEST(testing::group_members(group).empty());
}

BOOST_AUTO_TEST_SUITE_END()
