// Stopping preforkd (SPEC sections 2 and 7): TERM under load exits 0 and removes the
// socket, in-flight requests finish with `Connection: close`, idle keep-alive
// connections are closed at once, INT and QUIT stop fast; no process of the group remains.
#include "prefork/testing.hpp"
#include "support/http_client.hpp"
#include "support/load.hpp"
#include "support/procfs.hpp"
#include "support/server_helpers.hpp"

#include <boost/json/serialize.hpp>
#include <boost/test/unit_test.hpp>

#include <signal.h>

#include <filesystem>
#include <thread>

using namespace prefork::test_support;
using namespace std::chrono_literals;
namespace fs = std::filesystem;
using clock_type = std::chrono::steady_clock;

namespace {

constexpr auto request_timeout = 5s;
const std::string hello_body = "Hello, world!\n";

// Client connections the workers hold: every socket of a worker but its channel.
std::size_t worker_client_sockets(prefork::testing::server& server) {
  std::size_t total = 0;
  for (pid_t worker : worker_pids(server)) {
    auto count = socket_inodes(worker).size();
    if (count > 0) total += count - 1;
  }
  return total;
}

bool wait_worker_client_sockets(prefork::testing::server& server, std::size_t expected,
                                std::chrono::milliseconds timeout) {
  auto deadline = clock_type::now() + timeout;
  while (worker_client_sockets(server) != expected) {
    if (clock_type::now() >= deadline) return false;
    std::this_thread::sleep_for(10ms);
  }
  return true;
}

long long elapsed_ms(clock_type::time_point since) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(clock_type::now() - since).count();
}

// Opens `count` keep-alive connections, each after one successful request.
std::vector<http_connection> open_idle_connections(prefork::testing::server& server, int count) {
  std::vector<http_connection> connections(static_cast<std::size_t>(count));
  for (auto& connection : connections) {
    BOOST_REQUIRE(!connection.connect(unix_endpoint(server), request_timeout));
    auto response = connection.request("GET", "/", request_timeout);
    BOOST_REQUIRE_MESSAGE(response.has_value(), response.error().message());
    BOOST_REQUIRE_EQUAL(response->status, 200u);
    BOOST_REQUIRE(response->keep_alive);
  }
  return connections;
}

prefork::testing::server_options stop_options() {
  auto options = boost_test_options();
  options.config["graceful_timeout"] = 20;
  options.config["keepalive"] = 30;  // idle connections would outlive any test if TERM left them open
  return options;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(stop)

BOOST_AUTO_TEST_CASE(term_under_load_exits_0_and_removes_the_socket) {
  constexpr int clients = 8;
  prefork::testing::server server(stop_options());
  load_options load_config;
  load_config.target = unix_endpoint(server);
  load_config.clients = clients;
  load_generator load(load_config);
  bool going = load.wait_successes(200, 20s);
  BOOST_REQUIRE_MESSAGE(going, "load did not get going: " << load.snapshot().summary());

  auto term_at = clock_type::now();
  BOOST_REQUIRE_NO_THROW(server.signal(SIGTERM));
  auto status = server.wait_exit(30s);
  auto result = load.stop();
  BOOST_TEST_MESSAGE("TERM under load: exit after " << elapsed_ms(term_at) << " ms; load: " << result.summary());
  BOOST_REQUIRE_MESSAGE(status.has_value(), "no exit after TERM\n" << server.log_tail(40));
  BOOST_TEST(status->code == 0, status->to_string());
  BOOST_TEST(!fs::exists(fs::symlink_status(server.directory() / "app.sock")), "the socket file is still there");
  // After TERM new connections are refused; of the rest, at most the one request each
  // client had in the kernel backlog when the listener closed may fail.
  auto not_refused = result.total_failures() - result.failed(failure_kind::connect_refused);
  BOOST_TEST(not_refused <= static_cast<std::uint64_t>(clients), result.summary());
  BOOST_TEST(result.failed(failure_kind::bad_status) == 0u, result.summary());
  BOOST_TEST(result.failed(failure_kind::timeout) == 0u, result.summary());
  auto stopped = server.find_log("stopped");
  BOOST_REQUIRE_MESSAGE(stopped.size() == 1u, "expected one \"stopped\" line\n" << server.log_tail(40));
  BOOST_TEST((log_int(stopped[0], "lost") == 0), boost::json::serialize(stopped[0]));
  BOOST_TEST(wait_group_gone(server.pid()));
}

BOOST_AUTO_TEST_CASE(term_lets_in_flight_requests_finish_with_connection_close) {
  constexpr int connections_count = 8;
  prefork::testing::server server(stop_options());
  BOOST_REQUIRE_MESSAGE(wait_worker_client_sockets(server, 0, 3s), "the readiness probe's connection stays open");

  // Request line and some headers, without the final empty line: in flight, not idle.
  std::vector<http_connection> connections(connections_count);
  for (auto& connection : connections) {
    BOOST_REQUIRE(!connection.connect(unix_endpoint(server), request_timeout));
    BOOST_REQUIRE(
        !connection.send("GET / HTTP/1.1\r\nHost: localhost\r\nUser-Agent: prefork-test\r\n", request_timeout));
  }
  bool all_held = wait_worker_client_sockets(server, connections_count, 5s);
  BOOST_REQUIRE_MESSAGE(all_held, "the workers hold " << worker_client_sockets(server)
                                                      << " client connections, expected " << connections_count);

  auto term_at = clock_type::now();
  BOOST_REQUIRE_NO_THROW(server.signal(SIGTERM));
  std::this_thread::sleep_for(200ms);
  bool still_running = server.running();
  BOOST_TEST(still_running, "preforkd exited with requests in flight\n" << server.log_tail(40));
  BOOST_TEST(!fs::exists(fs::symlink_status(server.directory() / "app.sock")), "the listener's file is still there");

  for (std::size_t i = 0; i < connections.size(); ++i) {
    auto& connection = connections[i];
    auto ec = connection.send("\r\n", request_timeout);
    BOOST_TEST(!ec, "finishing request " << i << ": " << ec.message());
    if (ec) continue;
    auto response = connection.read_response(10s);
    BOOST_TEST(response.has_value(), "request " << i << ": " << (response ? "" : response.error().message()));
    if (!response) continue;
    BOOST_TEST(response->status == 200u);
    BOOST_TEST(response->body == hello_body);
    BOOST_TEST(response->header("Connection").value_or("") == "close", "request " << i << " without Connection: close");
    BOOST_TEST(!response->keep_alive);
  }

  auto status = server.wait_exit(15s);
  BOOST_REQUIRE_MESSAGE(status.has_value(), "no exit after TERM\n" << server.log_tail(40));
  BOOST_TEST(status->code == 0, status->to_string());
  BOOST_TEST(elapsed_ms(term_at) < 10000, "TERM took " << elapsed_ms(term_at) << " ms");
  BOOST_TEST(wait_group_gone(server.pid()));
}

BOOST_AUTO_TEST_CASE(term_closes_idle_keep_alive_connections_at_once) {
  prefork::testing::server server(stop_options());
  auto connections = open_idle_connections(server, 4);

  auto term_at = clock_type::now();
  BOOST_REQUIRE_NO_THROW(server.signal(SIGTERM));
  for (std::size_t i = 0; i < connections.size(); ++i) {
    auto ec = connections[i].wait_closed(3s);
    BOOST_TEST(!ec, "idle connection " << i << " after TERM: " << ec.message());
  }
  auto status = server.wait_exit(15s);
  auto took = elapsed_ms(term_at);
  BOOST_TEST_MESSAGE("TERM with idle keep-alive connections: exit after " << took << " ms");
  BOOST_REQUIRE_MESSAGE(status.has_value(), "no exit after TERM\n" << server.log_tail(40));
  BOOST_TEST(status->code == 0, status->to_string());
  BOOST_TEST(took < 3000, "TERM with idle connections took " << took << " ms (graceful_timeout is 20 s)");
  BOOST_TEST(wait_group_gone(server.pid()));
}

BOOST_AUTO_TEST_CASE(int_stops_fast_with_exit_0) {
  prefork::testing::server server(stop_options());
  auto connections = open_idle_connections(server, 2);

  auto int_at = clock_type::now();
  BOOST_REQUIRE_NO_THROW(server.signal(SIGINT));
  auto status = server.wait_exit(15s);
  auto took = elapsed_ms(int_at);
  BOOST_REQUIRE_MESSAGE(status.has_value(), "no exit after INT\n" << server.log_tail(40));
  BOOST_TEST(status->code == 0, status->to_string());
  BOOST_TEST(took < 3000, "INT took " << took << " ms");
  BOOST_TEST(!fs::exists(fs::symlink_status(server.directory() / "app.sock")), "the socket file is still there");
  BOOST_TEST(wait_group_gone(server.pid()));
}

BOOST_AUTO_TEST_CASE(quit_stops_fast_with_exit_0) {
  prefork::testing::server server(stop_options());
  auto connections = open_idle_connections(server, 2);

  auto quit_at = clock_type::now();
  BOOST_REQUIRE_NO_THROW(server.signal(SIGQUIT));
  auto status = server.wait_exit(15s);
  auto took = elapsed_ms(quit_at);
  BOOST_REQUIRE_MESSAGE(status.has_value(), "no exit after QUIT\n" << server.log_tail(40));
  BOOST_TEST(status->code == 0, status->to_string());
  BOOST_TEST(took < 3000, "QUIT took " << took << " ms");
  BOOST_TEST(wait_group_gone(server.pid()));
}

BOOST_AUTO_TEST_CASE(workers_die_with_the_master) {
  prefork::testing::server server(boost_test_options());
  auto workers = worker_pids(server);
  BOOST_REQUIRE(!workers.empty());
  BOOST_REQUIRE_NO_THROW(server.signal(SIGKILL));
  auto status = server.wait_exit(5s);
  BOOST_REQUIRE(status.has_value());
  BOOST_TEST(status->signal == SIGKILL);
  // SPEC section 7: SIGKILL of the master leaves no worker alive after 2 s.
  BOOST_TEST(wait_group_gone(server.pid(), 2s), "workers outlived the master by 2 s");
}

BOOST_AUTO_TEST_SUITE_END()
