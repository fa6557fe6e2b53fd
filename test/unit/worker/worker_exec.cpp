// exec_environment: what an exec'd worker finds in its environment (lib/PROTOCOL.md): the
// master's variables minus systemd's and stale PREFORK_* ones, plus the protocol's own.
#include "worker/worker_exec.hpp"

#include "prefork/config.hpp"

#include <boost/json/parse.hpp>
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <string>
#include <vector>

namespace {

std::vector<std::string> environment_for(std::vector<const char*> inherited, const prefork::config& settings) {
  inherited.push_back(nullptr);
  prefork::detail::worker_launch launch;
  launch.settings = &settings;
  launch.id = 4;
  launch.generation = 2;
  return prefork::detail::exec_environment(inherited.data(), launch);
}

std::string value_of(const std::vector<std::string>& environment, const std::string& name) {
  std::string found;
  int count = 0;
  for (const auto& entry : environment) {
    if (entry.starts_with(name + "=")) {
      found = entry.substr(name.size() + 1);
      ++count;
    }
  }
  BOOST_TEST(count <= 1, name << " is set " << count << " times");
  return found;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(worker_exec)

BOOST_AUTO_TEST_CASE(the_worker_gets_the_protocol_variables) {
  auto settings = prefork::default_config();
  settings.exec = {"python3", "-m", "prefork_wsgi", "app:app"};
  settings.timeout = std::chrono::milliseconds(2500);
  const auto environment = environment_for({"PATH=/usr/bin:/bin", "HOME=/root"}, settings);
  BOOST_TEST(value_of(environment, "PATH") == "/usr/bin:/bin");
  BOOST_TEST(value_of(environment, "HOME") == "/root");
  BOOST_TEST(value_of(environment, "PREFORK_PROTOCOL") == "1");
  BOOST_TEST(value_of(environment, "PREFORK_CHANNEL_FD") == "3");
  BOOST_TEST(value_of(environment, "PREFORK_WORKER_ID") == "4");
  BOOST_TEST(value_of(environment, "PREFORK_GENERATION") == "2");
  const auto config = boost::json::parse(value_of(environment, "PREFORK_CONFIG")).as_object();
  BOOST_TEST(config.at("timeout").as_double() == 2.5);
  BOOST_TEST(config.at("exec").as_array().size() == 4u);
  BOOST_TEST(config.at("http").at("max_header_bytes").as_int64() == 8192);
}

BOOST_AUTO_TEST_CASE(systemd_and_stale_prefork_variables_are_not_inherited) {
  auto settings = prefork::default_config();
  settings.exec = {"worker"};
  const auto environment = environment_for(
      {"NOTIFY_SOCKET=/run/systemd/notify", "LISTEN_FDS=2", "LISTEN_PID=1", "LISTEN_FDNAMES=a:b", "WATCHDOG_USEC=1",
       "WATCHDOG_PID=1", "PREFORK_WORKER_ID=99", "PREFORK_CONFIG={}", "PREFORK_CONTROL=ctl.sock", "LANG=C.UTF-8"},
      settings);
  for (const auto& entry : environment) {
    BOOST_TEST(!entry.starts_with("NOTIFY_SOCKET="), entry);
    BOOST_TEST(!entry.starts_with("LISTEN_"), entry);
    BOOST_TEST(!entry.starts_with("WATCHDOG_"), entry);
  }
  BOOST_TEST(value_of(environment, "PREFORK_WORKER_ID") == "4");
  BOOST_TEST(value_of(environment, "PREFORK_CONFIG") != "{}");
  // Not the protocol's: a user's own variables pass, PREFORK_ prefix or not.
  BOOST_TEST(value_of(environment, "PREFORK_CONTROL") == "ctl.sock");
  BOOST_TEST(value_of(environment, "LANG") == "C.UTF-8");
}

BOOST_AUTO_TEST_SUITE_END()
