// prefork::testing::server, the library's harness for users' integration tests: it starts
// preforkd ready to serve, drives it, and leaves no process behind, even when a test throws.
#include "prefork/testing.hpp"
#include "unit_support/preconditions.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/json/parse.hpp>
#include <boost/test/unit_test.hpp>

#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <latch>
#include <set>
#include <thread>

namespace json = boost::json;
namespace fs = std::filesystem;
using namespace std::chrono_literals;
using prefork::testing::server;
using prefork::testing::server_options;

namespace {

// Every server of these tests: the testbed app, 2 workers, leaks reported as test errors.
server_options testbed_options() {
  server_options options;
  options.config["app"] = "testbed";
  options.config["workers"] = 2;
  options.on_stop_failure = [](const std::string& message) { BOOST_ERROR(message); };
  return options;
}

std::set<pid_t> worker_pids(server& s) {
  std::set<pid_t> pids;
  for (const auto& worker : s.workers()) pids.insert(static_cast<pid_t>(worker.at("pid").to_number<long long>()));
  return pids;
}

// Everything the peer sends until it closes; each read waits at most 10 s (the test fails
// with what came so far rather than hang).
std::string read_to_eof(prefork::socket_type& socket) {
  const timeval limit{10, 0};
  ::setsockopt(socket.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
  std::string reply;
  boost::system::error_code ec;
  std::array<char, 512> chunk;
  while (!ec) {
    std::size_t n = socket.read_some(boost::asio::buffer(chunk), ec);
    reply.append(chunk.data(), n);
  }
  BOOST_TEST((ec == boost::asio::error::eof), "reading until the peer closes: " << ec.message() << "; got: " << reply);
  return reply;
}

// Waits (bounded) until every worker is of `generation` and none of `old` is left.
void wait_for_generation(server& s, std::uint64_t generation, const std::set<pid_t>& old) {
  auto done = [&] {
    auto workers = s.workers();
    return !workers.empty() && std::all_of(workers.begin(), workers.end(), [&](const json::value& worker) {
      return worker.at("generation").to_number<std::uint64_t>() == generation &&
             !old.contains(static_cast<pid_t>(worker.at("pid").to_number<long long>()));
    });
  };
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  while (!done() && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(10ms);
  BOOST_REQUIRE_MESSAGE(done(), "generation " << generation << " did not replace the old workers\n" << s.log_tail());
}

// Whether `ec` says the peer had closed the connection (what a request on a connection
// whose worker died gets), rather than a timeout or a refusal.
bool closed_by_server(const boost::system::error_code& ec) {
  return ec == boost::beast::http::error::end_of_stream || ec == boost::asio::error::eof ||
         ec == boost::asio::error::connection_reset || ec == boost::asio::error::broken_pipe;
}

// A shell script standing in for a server program, in a directory removed at scope exit.
class fake_program {
 public:
  explicit fake_program(const std::string& body) {
    std::string pattern = "/tmp/prefork-fake.XXXXXX";
    BOOST_REQUIRE(::mkdtemp(pattern.data()) != nullptr);
    directory_ = pattern;
    std::ofstream(path()) << "#!/bin/sh\n" << body << "\n";
    ::chmod(path().c_str(), 0755);
  }
  ~fake_program() {
    std::error_code ignored;
    fs::remove_all(directory_, ignored);
  }
  fs::path path() const { return directory_ / "program.sh"; }
  fs::path pid_file() const { return directory_ / "pid"; }
  pid_t recorded_pid() const {
    long pid = 0;
    std::ifstream(pid_file()) >> pid;
    return static_cast<pid_t>(pid);
  }

 private:
  fs::path directory_;
};

}  // namespace

BOOST_AUTO_TEST_SUITE(testing_helper)

// The README's example ("Use prefork in your integration tests") is this test.
BOOST_AUTO_TEST_CASE(whoami_answers_from_a_worker) {
  prefork::testing::server_options options;
  options.config["app"] = "testbed";  // preforkd's app with /whoami, /sleep, /crash...
  options.config["workers"] = 2;
  prefork::testing::server preforkd(options);  // $PREFORKD, ready when constructed

  auto response = preforkd.get("/whoami");
  BOOST_TEST(response.status == 200u);
  BOOST_TEST(response.header("Content-Type").value_or("") == "application/json");
  auto whoami = boost::json::parse(response.body).as_object();

  auto status = preforkd.status();
  BOOST_TEST(status.at("workers").at("ready").to_number<int>() == 2);
  bool known_worker = false;
  for (const auto& worker : preforkd.workers()) known_worker = known_worker || worker.at("pid") == whoami.at("pid");
  BOOST_TEST(known_worker, "the pid of /whoami is not one of the workers");
}  // the destructor stops preforkd and checks that none of its processes is left

BOOST_AUTO_TEST_CASE(killed_worker_is_replaced_by_a_new_pid) {
  server s(testbed_options());
  auto before = worker_pids(s);
  BOOST_REQUIRE_EQUAL(before.size(), 2u);
  auto whoami = json::parse(s.get("/whoami").body).as_object();
  const int id = whoami.at("worker").to_number<int>();
  const pid_t victim = static_cast<pid_t>(whoami.at("pid").to_number<long long>());

  BOOST_TEST(s.kill_worker(id, SIGKILL) == victim);  // returns once the replacement is ready
  auto after = worker_pids(s);
  BOOST_TEST(after.size() == 2u);
  BOOST_TEST(!after.contains(victim));
  std::vector<pid_t> replacements;
  std::set_difference(after.begin(), after.end(), before.begin(), before.end(), std::back_inserter(replacements));
  BOOST_REQUIRE_EQUAL(replacements.size(), 1u);

  // The server's own keep-alive session may have been on the dead worker: it reconnects.
  BOOST_TEST(s.get("/").status == 200u);
  // New connections are spread over both workers, so the replacement answers soon.
  bool served_by_replacement = false;
  for (int i = 0; i < 20 && !served_by_replacement; ++i) {
    auto answer = json::parse(s.session().get("/whoami").body).as_object();
    served_by_replacement = answer.at("pid").to_number<long long>() == replacements.front();
  }
  BOOST_TEST(served_by_replacement, "the replacement " << replacements.front() << " never answered");
  BOOST_TEST(s.stats().at("lost").to_number<int>() == 0);
}

BOOST_AUTO_TEST_CASE(a_test_that_throws_leaves_no_process) {
  pid_t group = -1;
  std::set<pid_t> workers;
  fs::path directory;
  try {
    server s(testbed_options());
    group = s.pid();
    workers = worker_pids(s);
    directory = s.directory();
    BOOST_TEST(s.get("/").status == 200u);
    throw std::runtime_error("the test body failed");
  } catch (const std::runtime_error& e) {
    BOOST_TEST(e.what() == std::string("the test body failed"));
  }
  BOOST_REQUIRE(group > 0);
  BOOST_TEST(workers.size() == 2u);
  BOOST_TEST(prefork::testing::group_members(group).empty(), "left: " << prefork::testing::describe_process(group));
  for (pid_t worker : workers)
    BOOST_TEST(prefork::testing::describe_process(worker).find("(gone)") != std::string::npos);
  if (std::getenv("PREFORK_KEEP_TMP") == nullptr) BOOST_TEST(!fs::exists(directory));
}

BOOST_AUTO_TEST_CASE(sixty_four_sleeps_on_two_workers_overlap) {
  server s(testbed_options());
  constexpr int clients = 64;
  constexpr auto sleep = 200ms;
  std::atomic<int> answered{0};
  std::vector<std::string> failures(clients);
  // Every session is made before any thread waits on the latch: nothing can throw once
  // some threads wait, which would leave them waiting for ever.
  std::vector<prefork::testing::http_session> sessions;
  for (int i = 0; i < clients; ++i) sessions.push_back(s.session());
  std::latch start(clients + 1);
  std::vector<std::jthread> threads;
  threads.reserve(clients);
  for (int i = 0; i < clients; ++i) {
    threads.emplace_back([&, i, session = std::move(sessions[i])]() mutable {
      start.arrive_and_wait();
      auto response = session.try_request("GET", "/sleep?ms=200");
      if (response && response->status == 200u)
        ++answered;
      else
        failures[i] = response ? "status " + std::to_string(response->status) : response.error().message();
    });
  }
  start.arrive_and_wait();
  const auto started = std::chrono::steady_clock::now();
  for (auto& thread : threads) thread.join();
  const auto elapsed = std::chrono::steady_clock::now() - started;
  for (const auto& failure : failures) BOOST_TEST(failure.empty(), failure);
  BOOST_TEST(answered.load() == clients);
  // Served one after another, 64 sleeps on 2 workers take 32 × 200 ms = 6.4 s; a handler
  // that does not block its worker overlaps them all. Below half of that proves it.
  BOOST_TEST(
      elapsed < clients * sleep / 2 / 2,
      "64 × /sleep?ms=200 took " << std::chrono::duration_cast<std::chrono::milliseconds>(elapsed).count() << " ms");
}

BOOST_AUTO_TEST_CASE(control_helpers_scale_reload_pause_and_signal) {
  server s(testbed_options());
  s.scale(3);
  BOOST_TEST(s.workers().size() == 3u);
  BOOST_TEST(s.status().at("workers").at("ready").to_number<int>() == 3);

  const auto generation = s.status().at("generation").to_number<std::uint64_t>();
  BOOST_TEST(s.reload() == generation + 1);
  for (const auto& worker : s.workers())
    BOOST_TEST(worker.at("generation").to_number<std::uint64_t>() == generation + 1);

  const int id = s.workers().at(0).at("id").to_number<int>();
  s.pause_worker(id);
  BOOST_TEST(s.workers().at(0).at("state").as_string() == "paused");
  s.resume_worker(id);
  BOOST_TEST(s.workers().at(0).at("state").as_string() == "ready");

  // A reload re-reads the file: the desired count is the file's again.
  const int desired = s.status().at("workers").at("desired").to_number<int>();
  BOOST_TEST(desired == 2);
  s.signal(SIGTTIN);  // one worker more
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (s.status().at("workers").at("desired").to_number<int>() != desired + 1 &&
         std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(5ms);
  BOOST_TEST(s.status().at("workers").at("desired").to_number<int>() == desired + 1);
  s.wait_ready();
  BOOST_TEST(s.get("/healthz").body == "ok\n");

  auto status = s.stop();
  BOOST_TEST(status.code == 0, status.to_string());
  BOOST_TEST(s.master_exit().has_value());
  BOOST_TEST(!s.running());
  BOOST_TEST((s.stop() == status));  // idempotent
}

BOOST_AUTO_TEST_CASE(a_tcp_only_server_reports_its_port_and_stops_fast) {
  server_options options = testbed_options();
  options.config["bind"] = json::array{"127.0.0.1:0"};  // the address exists once bound
  server s(options);
  const std::string address = s.address();
  BOOST_TEST(address.starts_with("127.0.0.1:"), address);
  BOOST_TEST(address != "127.0.0.1:0", address);
  BOOST_CHECK_THROW(s.socket_path(), std::runtime_error);
  BOOST_TEST(s.get("/healthz").body == "ok\n");

  // A signal other than TERM or KILL goes straight to the worker: the master sees a crash.
  const pid_t quitted = s.signal_worker(1, SIGQUIT);
  for (const auto& worker : s.workers()) BOOST_TEST(worker.at("pid") != quitted);

  const auto status = s.stop(prefork::testing::stop_mode::fast);
  BOOST_TEST(status.code == 0, status.to_string());
  BOOST_TEST(!s.find_log("stopped").empty(), s.log_tail());
}

BOOST_AUTO_TEST_CASE(errors_are_reported) {
  server s(testbed_options());
  try {
    s.kill_worker(999, SIGKILL);
    BOOST_ERROR("kill_worker 999 did not throw");
  } catch (const prefork::testing::control_error& e) {
    BOOST_TEST(e.code() == prefork::errc::not_found);
  }
  try {
    s.control({{"cmd", "no_such_command"}});
    BOOST_ERROR("an unknown command did not throw");
  } catch (const prefork::testing::control_error& e) {
    BOOST_TEST(e.code() == prefork::errc::unknown_command);
  }
  BOOST_TEST(s.control({{"cmd", "ping"}}) == json::value("pong"));  // the connection goes on

  // Raw sockets: a request written by hand gets an answer.
  boost::asio::io_context io;
  auto socket = s.connect(io.get_executor());
  const std::string request = "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
  boost::asio::write(socket, boost::asio::buffer(request));
  const std::string reply = read_to_eof(socket);
  BOOST_TEST(reply.starts_with("HTTP/1.1 200"));

  // HTTP failures are values from try_request, exceptions from get.
  auto crashed = s.http().try_request("GET", "/crash");
  BOOST_TEST(!crashed.has_value());
  prefork::testing::http_session nowhere("unix:" + (s.directory() / "none.sock").string(), 1s);
  BOOST_TEST(!nowhere.try_request("GET", "/").has_value());
  BOOST_CHECK_THROW(nowhere.get("/"), std::runtime_error);
  BOOST_CHECK_THROW(prefork::testing::http_session("no-port"), std::invalid_argument);
  s.wait_ready();  // the crashed worker's replacement

  // A request that outlives the session's timeout is timed_out, and the session goes on.
  prefork::testing::http_session impatient(s.address(), 200ms);
  auto slow = impatient.try_request("GET", "/sleep?ms=2000");
  BOOST_REQUIRE(!slow.has_value());
  BOOST_TEST((slow.error() == boost::asio::error::timed_out), slow.error().message());
  BOOST_TEST(impatient.get("/healthz").status == 200u);
}

// The README's example of HTTP requests ("Use prefork in your integration tests").
BOOST_AUTO_TEST_CASE(requests_with_headers_bodies_and_json) {
  prefork::testing::server s(testbed_options());

  auto echoed = s.post("/echo", "hello", "text/plain");  // testbed's POST /echo returns the body
  BOOST_TEST(echoed.body == "hello");
  auto sum = s.post_json("/echo", {{"a", 1}, {"b", 2}}).json();  // Content-Type: application/json
  BOOST_TEST(sum.at("b").to_number<int>() == 2);
  BOOST_TEST(s.get("/whoami").json().at("pid").is_int64());

  // Any method, any headers: the server asks for the body with a 100 only when the
  // request said `Expect: 100-continue`.
  auto continued = s.request({.method = "POST",
                              .target = "/echo",
                              .headers = {{"Expect", "100-continue"}, {"X-Trace", "t-1"}},
                              .body = "after the 100"});
  BOOST_TEST(continued.body == "after the 100");
  BOOST_TEST((continued.interim == std::vector<unsigned>{100}));
  BOOST_TEST(s.post("/echo", "no expectation").interim.empty());
  BOOST_TEST(s.http().request("DELETE", "/echo").header("Allow").value_or("") == "POST");

  // Every request so far went over one kept-alive connection...
  BOOST_TEST(s.http().connections() == 1u);
  BOOST_TEST(s.get("/healthz").reused);
  // ...until the client asks to close it: the server agrees, the session reconnects.
  BOOST_TEST(s.get("/healthz", {{"Connection", "close"}}).header("Connection").value_or("") == "close");
  auto fresh = s.get("/healthz");
  BOOST_TEST(!fresh.reused);
  BOOST_TEST(s.http().connections() == 2u);

  // A header that would split the request is refused before anything is sent.
  BOOST_CHECK_THROW(s.get("/", {{"X-Bad", "a\r\nInjected: 1"}}), std::invalid_argument);
  // A body that is not JSON says so, with the status and the body.
  BOOST_CHECK_EXCEPTION(s.get("/healthz").json(), std::runtime_error, [](const std::runtime_error& e) {
    const std::string message = e.what();
    return message.starts_with("response 200 is not JSON") && message.ends_with("body \"ok\\n\"");
  });
  BOOST_TEST(s.http().connections() == 2u);
}

BOOST_AUTO_TEST_CASE(a_kept_connection_moves_to_the_new_workers_on_sighup) {
  server s(testbed_options());
  auto& http = s.http();
  auto before = s.get("/whoami").json();
  const auto generation = before.at("generation").to_number<std::uint64_t>();
  const auto old_workers = worker_pids(s);

  s.signal(SIGHUP);  // the idle connection is handed back and passed to a new worker
  wait_for_generation(s, generation + 1, old_workers);

  auto after = s.get("/whoami");
  BOOST_TEST(after.reused, "the connection did not survive the reload");
  BOOST_TEST(http.connections() == 1u);
  auto whoami = after.json();
  BOOST_TEST(whoami.at("generation").to_number<std::uint64_t>() == generation + 1);
  BOOST_TEST(whoami.at("pid") != before.at("pid"));
  BOOST_TEST(s.stats().at("migrated").to_number<int>() >= 1);
}

BOOST_AUTO_TEST_CASE(a_post_on_a_connection_the_server_closed_is_reported_not_sent_again) {
  server s(testbed_options());
  auto& http = s.http();
  // The worker that holds the session's connection dies, and the connection with it.
  auto whoami = s.get("/whoami").json();
  s.kill_worker(whoami.at("worker").to_number<int>(), SIGKILL);
  auto posted = http.try_request({.method = "POST", .target = "/echo", .body = "at most once"});
  BOOST_REQUIRE(!posted.has_value());
  BOOST_TEST(closed_by_server(posted.error()), posted.error().message());
  BOOST_TEST(http.connections() == 1u, "the POST was sent again");

  // A GET in the same place is sent again on a new connection, and the count shows it.
  whoami = s.get("/whoami").json();
  BOOST_TEST(http.connections() == 2u);
  s.kill_worker(whoami.at("worker").to_number<int>(), SIGKILL);
  auto again = http.get("/whoami");
  BOOST_TEST(again.status == 200u);
  BOOST_TEST(!again.reused);
  BOOST_TEST(http.connections() == 3u);
  BOOST_TEST(again.json().at("pid") != whoami.at("pid"));
}

BOOST_AUTO_TEST_CASE(a_user_program_runs_under_the_helper,
                     *boost::unit_test::precondition(prefork::unit_support::program_beside_preforkd{"kv-server"})) {
  // The example kv-server is built beside preforkd: a program of its own on prefork::run.
  const char* preforkd = std::getenv("PREFORKD");
  BOOST_REQUIRE_MESSAGE(preforkd != nullptr, "PREFORKD is not set");
  const fs::path kv_server = fs::path(preforkd).parent_path() / "kv-server";
  server_options options;
  options.program = kv_server;
  options.config["app"] = "kv";
  options.on_stop_failure = [](const std::string& message) { BOOST_ERROR(message); };
  server s(options);
  BOOST_TEST(s.config().at("app").as_string() == "kv");

  boost::asio::io_context io;
  auto socket = s.connect(io.get_executor());
  boost::asio::write(socket, boost::asio::buffer(std::string("SET greeting hello world\nGET greeting\n")));
  socket.shutdown(prefork::socket_type::shutdown_send);
  const std::string reply = read_to_eof(socket);
  BOOST_TEST(reply == "OK\nVALUE hello world\n");
}

BOOST_AUTO_TEST_CASE(a_missing_program_is_an_error) {
  server_options options = testbed_options();
  options.program = "/nonexistent/preforkd";
  BOOST_CHECK_EXCEPTION(server{options}, std::runtime_error, [](const std::runtime_error& e) {
    return std::string(e.what()).find("/nonexistent/preforkd is not executable") != std::string::npos;
  });

  // An executable file that is no program: execve fails, and the child that tried is reaped.
  fake_program not_a_program("");
  std::ofstream(not_a_program.path(), std::ios::trunc) << "\x7f"
                                                          "ELF garbage\n";
  options.program = not_a_program.path();
  BOOST_CHECK_EXCEPTION(server{options}, std::runtime_error, [](const std::runtime_error& e) {
    BOOST_TEST_MESSAGE(e.what());
    return std::string(e.what()).find("cannot start") != std::string::npos;
  });
  std::ifstream children("/proc/self/task/" + std::to_string(::gettid()) + "/children");
  std::string left;
  std::getline(children, left);
  BOOST_TEST(left.empty(), "children left: " << left);

  // Without a program, $PREFORKD names it (this test runs single-threaded: setenv is safe).
  const std::string preforkd = std::getenv("PREFORKD") ? std::getenv("PREFORKD") : "";
  ::unsetenv("PREFORKD");
  BOOST_CHECK_EXCEPTION(server{testbed_options()}, std::runtime_error, [](const std::runtime_error& e) {
    return std::string(e.what()).find("PREFORKD is not set") != std::string::npos;
  });
  if (!preforkd.empty()) ::setenv("PREFORKD", preforkd.c_str(), 1);
}

BOOST_AUTO_TEST_CASE(a_program_that_exits_at_start_is_an_error) {
  fake_program program("echo 'cannot start: bad config' >&2\nexit 2");
  server_options options = testbed_options();
  options.program = program.path();
  try {
    server s(options);
    BOOST_ERROR("the server started");
  } catch (const std::runtime_error& e) {
    std::string message = e.what();
    BOOST_TEST(message.find("exited (exit 2)") != std::string::npos, message);
    BOOST_TEST(message.find("cannot start: bad config") != std::string::npos, message);
  }
}

BOOST_AUTO_TEST_CASE(a_program_never_ready_times_out_and_is_killed) {
  fake_program program(R"(echo $$ > "$(dirname "$0")/pid"
exec sleep 60)");
  server_options options = testbed_options();
  options.program = program.path();
  options.start_timeout = 300ms;
  BOOST_CHECK_EXCEPTION(server{options}, std::runtime_error, [](const std::runtime_error& e) {
    return std::string(e.what()).find("within 300 ms") != std::string::npos;
  });
  const pid_t group = program.recorded_pid();
  BOOST_REQUIRE(group > 0);
  BOOST_TEST(prefork::testing::group_members(group).empty());
}

// A program whose child ignores TERM and outlives it: the leak the harness exists to catch.
constexpr const char* leaking_program = R"(echo $$ > "$(dirname "$0")/pid"
(trap '' TERM; exec sleep 60) &
exec sleep 60)";

void wait_for_two_members(const fake_program& program) {
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while ((program.recorded_pid() <= 0 || prefork::testing::group_members(program.recorded_pid()).size() < 2) &&
         std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(5ms);
  BOOST_REQUIRE_EQUAL(prefork::testing::group_members(program.recorded_pid()).size(), 2u);
}

BOOST_AUTO_TEST_CASE(stop_reports_and_kills_processes_that_outlive_the_master) {
  fake_program program(leaking_program);
  server_options options = testbed_options();
  options.program = program.path();
  options.wait = prefork::testing::start_wait::no_wait;
  options.stop_timeout = 300ms;
  server s(options);
  wait_for_two_members(program);
  BOOST_CHECK_EXCEPTION(s.stop(), std::runtime_error, [](const std::runtime_error& e) {
    BOOST_TEST_MESSAGE(e.what());
    return std::string(e.what()).find("outlived") != std::string::npos &&
           std::string(e.what()).find("(sleep)") != std::string::npos;
  });
  BOOST_TEST(s.master_exit().value().signal == SIGTERM);
  BOOST_TEST(prefork::testing::group_members(s.pid()).empty());
}

BOOST_AUTO_TEST_CASE(destructor_reports_a_leak_through_the_hook) {
  fake_program program(leaking_program);
  std::vector<std::string> reports;
  pid_t group = -1;
  {
    server_options options = testbed_options();
    options.program = program.path();
    options.wait = prefork::testing::start_wait::no_wait;
    options.stop_timeout = 300ms;
    options.on_stop_failure = [&](const std::string& message) { reports.push_back(message); };
    server s(options);
    group = s.pid();
    wait_for_two_members(program);
  }
  BOOST_REQUIRE_EQUAL(reports.size(), 1u);
  BOOST_TEST(reports[0].find("outlived") != std::string::npos, reports[0]);
  BOOST_TEST(prefork::testing::group_members(group).empty());
}

BOOST_AUTO_TEST_SUITE_END()
