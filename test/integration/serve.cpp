// preforkd serves the hello app over Unix and TCP listeners (status codes, HEAD,
// keep-alive, pipelining), and its workers hold nothing but their own channel.
#include "prefork/testing.hpp"
#include "support/http_client.hpp"
#include "support/load.hpp"
#include "support/procfs.hpp"
#include "support/server_helpers.hpp"

#include <boost/json/array.hpp>
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <map>
#include <sstream>
#include <thread>

using namespace prefork::test_support;
using namespace std::chrono_literals;

namespace {

constexpr auto request_timeout = 5s;
const std::string hello_body = "Hello, world!\n";

std::string inode_list(const std::vector<unsigned long>& inodes) {
  std::ostringstream text;
  for (auto inode : inodes) text << inode << " ";
  return text.str();
}

// Empty when every worker holds exactly one socket that neither the master nor another
// worker holds; otherwise what is wrong.
std::string socket_isolation_problem(pid_t master, const std::vector<pid_t>& workers) {
  auto master_inodes = socket_inodes(master);
  std::map<unsigned long, std::vector<pid_t>> holders;
  std::ostringstream problem;
  for (pid_t worker : workers) {
    auto inodes = socket_inodes(worker);
    if (inodes.size() != 1) {
      problem << "worker " << worker << " holds " << inodes.size() << " sockets (" << inode_list(inodes)
              << "), expected 1; ";
    }
    for (auto inode : inodes) {
      if (std::binary_search(master_inodes.begin(), master_inodes.end(), inode)) {
        problem << "worker " << worker << " shares socket " << inode << " with the master; ";
      }
      holders[inode].push_back(worker);
    }
  }
  for (const auto& [inode, pids] : holders) {
    if (pids.size() > 1) problem << "socket " << inode << " is held by " << pids.size() << " workers; ";
  }
  return problem.str();
}

}  // namespace

BOOST_AUTO_TEST_SUITE(serve)

BOOST_AUTO_TEST_CASE(hello_over_unix_socket) {
  prefork::testing::server server(boost_test_options());

  auto listening = server.find_log("listening");
  BOOST_REQUIRE_EQUAL(listening.size(), 1u);
  BOOST_TEST(log_string(listening[0], "bind") == "unix:app.sock");
  BOOST_TEST(log_string(listening[0], "address") == "unix:" + (server.directory() / "app.sock").string());

  auto session = server.session();
  auto response = session.try_request("GET", "/");
  BOOST_REQUIRE_MESSAGE(response.has_value(), response.error().message());
  BOOST_TEST(response->status == 200u);
  BOOST_TEST(response->body == hello_body);
  BOOST_TEST(response->header("Content-Type").value_or("") == "text/plain; charset=utf-8");

  auto health = session.try_request("GET", "/healthz");
  BOOST_REQUIRE_MESSAGE(health.has_value(), health.error().message());
  BOOST_TEST(health->status == 200u);
  BOOST_TEST(health->body == "ok\n");
}

BOOST_AUTO_TEST_CASE(hello_over_tcp) {
  auto options = boost_test_options();
  options.config["bind"] = boost::json::array{"unix:app.sock", "127.0.0.1:0"};
  prefork::testing::server server(std::move(options));

  auto tcp = listening_endpoint(server, "127.0.0.1:0");
  BOOST_REQUIRE_MESSAGE(tcp.has_value(), "no \"listening\" line for 127.0.0.1:0\n" << server.log_tail(40));
  BOOST_TEST((tcp->type == endpoint::kind::tcp));
  BOOST_TEST(tcp->host == "127.0.0.1");
  BOOST_TEST(tcp->port != 0);

  prefork::testing::http_session session(tcp->to_string(), request_timeout);
  auto response = session.try_request("GET", "/");
  BOOST_REQUIRE_MESSAGE(response.has_value(), "GET / on " << tcp->to_string() << ": " << response.error().message());
  BOOST_TEST(response->status == 200u);
  BOOST_TEST(response->body == hello_body);
}

BOOST_AUTO_TEST_CASE(unknown_path_is_404) {
  prefork::testing::server server(boost_test_options());
  auto response = server.http().try_request("GET", "/no/such/page");
  BOOST_REQUIRE_MESSAGE(response.has_value(), response.error().message());
  BOOST_TEST(response->status == 404u);
}

BOOST_AUTO_TEST_CASE(other_method_is_405) {
  prefork::testing::server server(boost_test_options());
  auto response = server.http().try_request("DELETE", "/");
  BOOST_REQUIRE_MESSAGE(response.has_value(), response.error().message());
  BOOST_TEST(response->status == 405u);
  BOOST_TEST(response->header("Allow").value_or("") == "GET, HEAD");
}

BOOST_AUTO_TEST_CASE(head_has_headers_and_no_body) {
  prefork::testing::server server(boost_test_options());
  http_connection connection;
  BOOST_REQUIRE(!connection.connect(unix_endpoint(server), request_timeout));

  auto head = connection.request("HEAD", "/", request_timeout);
  BOOST_REQUIRE_MESSAGE(head.has_value(), head.error().message());
  BOOST_TEST(head->status == 200u);
  BOOST_TEST(head->body.empty());
  BOOST_TEST(head->header("Content-Length").value_or("") == std::to_string(hello_body.size()));
  BOOST_TEST(head->header("Content-Type").value_or("") == "text/plain; charset=utf-8");

  // Had the server sent a body after HEAD, it would be parsed as this response's start.
  auto get = connection.request("GET", "/", request_timeout);
  BOOST_REQUIRE_MESSAGE(get.has_value(), "GET after HEAD: " << get.error().message());
  BOOST_TEST(get->status == 200u);
  BOOST_TEST(get->body == hello_body);
}

BOOST_AUTO_TEST_CASE(keep_alive_serves_three_requests_on_one_connection) {
  prefork::testing::server server(boost_test_options());
  http_connection connection;
  BOOST_REQUIRE(!connection.connect(unix_endpoint(server), request_timeout));
  int fd = connection.native_handle();
  for (int i = 0; i < 3; ++i) {
    auto response = connection.request("GET", "/", request_timeout);
    BOOST_REQUIRE_MESSAGE(response.has_value(), "request " << i << ": " << response.error().message());
    BOOST_TEST(response->status == 200u);
    BOOST_TEST(response->body == hello_body);
    BOOST_TEST(response->keep_alive, "response " << i << " does not keep the connection alive");
  }
  BOOST_TEST(connection.native_handle() == fd);
}

BOOST_AUTO_TEST_CASE(pipelined_requests_are_answered_in_order) {
  prefork::testing::server server(boost_test_options());
  http_connection connection;
  BOOST_REQUIRE(!connection.connect(unix_endpoint(server), request_timeout));
  std::string batch = make_request("GET", "/") + make_request("GET", "/healthz") + make_request("GET", "/missing");
  BOOST_REQUIRE(!connection.send(batch, request_timeout));

  auto first = connection.read_response(request_timeout);
  BOOST_REQUIRE_MESSAGE(first.has_value(), "response 1: " << first.error().message());
  BOOST_TEST(first->status == 200u);
  BOOST_TEST(first->body == hello_body);
  auto second = connection.read_response(request_timeout);
  BOOST_REQUIRE_MESSAGE(second.has_value(), "response 2: " << second.error().message());
  BOOST_TEST(second->status == 200u);
  BOOST_TEST(second->body == "ok\n");
  auto third = connection.read_response(request_timeout);
  BOOST_REQUIRE_MESSAGE(third.has_value(), "response 3: " << third.error().message());
  BOOST_TEST(third->status == 404u);
}

BOOST_AUTO_TEST_CASE(concurrent_clients_see_no_failure) {
  prefork::testing::server server(boost_test_options());
  for (auto mode : {load_mode::connection_per_request, load_mode::keep_alive}) {
    load_options load_config;
    load_config.target = unix_endpoint(server);
    load_config.clients = 8;
    load_config.mode = mode;
    load_generator load(load_config);
    bool done = load.wait_successes(500, 20s);
    auto result = load.stop();
    BOOST_TEST_MESSAGE((mode == load_mode::keep_alive ? "keep-alive" : "connection per request")
                       << " load: " << result.summary());
    BOOST_TEST(done, result.summary());
    BOOST_TEST(result.total_failures() == 0u, result.summary());
    if (mode == load_mode::keep_alive) BOOST_TEST(result.reconnects == 0u, result.summary());
  }
}

BOOST_AUTO_TEST_CASE(workers_hold_no_listener_and_no_sibling_channel) {
  auto options = boost_test_options();
  options.config["workers"] = 3;
  options.config["bind"] = boost::json::array{"unix:app.sock", "127.0.0.1:0"};
  prefork::testing::server server(std::move(options));

  auto workers = worker_pids(server);
  BOOST_REQUIRE_EQUAL(workers.size(), 3u);
  // The readiness probe's connection may still be closing in a worker: poll briefly.
  std::string problem;
  auto deadline = std::chrono::steady_clock::now() + 3s;
  do {
    problem = socket_isolation_problem(server.pid(), workers);
    if (problem.empty()) break;
    std::this_thread::sleep_for(50ms);
  } while (std::chrono::steady_clock::now() < deadline);
  BOOST_TEST(problem.empty(), problem);
  // The master holds at least both listeners and one channel end per worker.
  BOOST_TEST(socket_inodes(server.pid()).size() >= 2u + workers.size());
}

BOOST_AUTO_TEST_SUITE_END()
