// tiny's integration tests: each test starts the real program with prefork::testing.
#define BOOST_TEST_MODULE tiny tests
#include <prefork/testing.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/read.hpp>
#include <boost/test/unit_test.hpp>

#include <csignal>
#include <string>

BOOST_AUTO_TEST_CASE(every_connection_is_greeted_by_a_worker) {
  prefork::testing::server_options options;
  options.program = TINY_PATH;  // from CMake: $<TARGET_FILE:tiny>
  options.config["workers"] = 2;
  prefork::testing::server tiny(options);  // in a temp dir, its own process group, ready

  boost::asio::io_context io;
  auto socket = tiny.connect(io.get_executor());  // to the Unix socket tiny listens on
  std::string greeting;
  boost::system::error_code ec;
  boost::asio::read(socket, boost::asio::dynamic_buffer(greeting), ec);  // until tiny closes
  BOOST_TEST(ec == boost::asio::error::eof);
  BOOST_TEST(greeting.starts_with("hello from worker "));

  const pid_t killed = tiny.kill_worker(1, SIGKILL);  // returns once a replacement is ready
  for (const auto& worker : tiny.workers()) BOOST_TEST(worker.at("pid") != killed);
  BOOST_TEST(tiny.stats().at("lost").to_number<int>() == 0);
}  // ~server: TERM, then a check that no process of tiny's group is left
