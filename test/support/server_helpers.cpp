#include "support/server_helpers.hpp"

#include "support/procfs.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/test/unit_test.hpp>

#include <signal.h>

#include <cerrno>
#include <thread>

namespace prefork::test_support {

namespace json = boost::json;
using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;

std::string log_string(const json::object& line, std::string_view key) {
  auto value = line.if_contains(key);
  if (value == nullptr || !value->is_string()) return {};
  return std::string(value->as_string());
}

std::optional<long long> log_int(const json::object& line, std::string_view key) {
  auto value = line.if_contains(key);
  if (value == nullptr) return std::nullopt;
  if (value->is_int64()) return value->as_int64();
  if (value->is_uint64()) return static_cast<long long>(value->as_uint64());
  return std::nullopt;
}

std::optional<long long> event_pid(const json::object& line) {
  if (line.contains("event.pid")) return log_int(line, "event.pid");
  return log_int(line, "pid");
}

prefork::result<json::value> control(const prefork::testing::server& server, const json::object& request,
                                     std::chrono::milliseconds timeout) {
  return control_call(server.control_path(), request, timeout);
}

long long status_workers(const json::object& status, std::string_view key) {
  auto workers = status.if_contains("workers");
  if (workers == nullptr || !workers->is_object()) return -1;
  auto value = workers->as_object().if_contains(key);
  if (value == nullptr) return -1;
  if (value->is_int64()) return value->as_int64();
  if (value->is_uint64()) return static_cast<long long>(value->as_uint64());
  return -1;
}

void rewrite_config(const prefork::testing::server& server, const json::object& changes) {
  json::object config = server.config();
  for (const auto& [key, value] : changes) config[key] = value;
  auto temporary = server.directory() / "preforkd.json.new";
  prefork::testing::write_file(temporary, json::serialize(config) + "\n");
  std::filesystem::rename(temporary, server.directory() / "preforkd.json");
}

std::optional<endpoint> listening_endpoint(const prefork::testing::server& server, std::string_view bind) {
  for (const auto& line : server.find_log("listening")) {
    if (log_string(line, "bind") == bind) return endpoint::parse(log_string(line, "address"));
  }
  return std::nullopt;
}

endpoint unix_endpoint(const prefork::testing::server& server) { return endpoint::unix_socket(server.socket_path()); }

std::vector<pid_t> worker_pids(prefork::testing::server& server) {
  if (!server.running()) return {};
  return children_of(server.pid());
}

bool wait_settled(prefork::testing::server& server, int desired, std::chrono::milliseconds timeout, std::string* why) {
  std::string last;
  auto deadline = clock_type::now() + timeout;
  for (;;) {
    try {
      auto status = server.status();
      auto children = worker_pids(server).size();
      last = "status.workers " + json::serialize(status.at("workers")) + ", " + std::to_string(children) + " children";
      if (status_workers(status, "desired") == desired && status_workers(status, "ready") == desired &&
          status_workers(status, "starting") == 0 && status_workers(status, "draining") == 0 &&
          status_workers(status, "backoff") <= 0 && children == static_cast<std::size_t>(desired)) {
        return true;
      }
    } catch (const prefork::testing::control_error& error) {
      last = "status: " + error.code().to_string() + ": " + error.what();
    }
    if (clock_type::now() >= deadline) break;
    std::this_thread::sleep_for(20ms);
  }
  if (why != nullptr) *why = last;
  return false;
}

bool wait_group_gone(pid_t pgid, std::chrono::milliseconds timeout) {
  auto deadline = clock_type::now() + timeout;
  for (;;) {
    if (::kill(-pgid, 0) != 0 && errno == ESRCH) return true;
    if (prefork::testing::group_members(pgid).empty()) return true;
    if (clock_type::now() >= deadline) return false;
    std::this_thread::sleep_for(10ms);
  }
}

load_options load_on(const prefork::testing::server& server, load_mode mode, int clients) {
  load_options options;
  options.target = unix_endpoint(server);
  options.clients = clients;
  options.mode = mode;
  options.request_timeout = 10s;
  return options;
}

void require_more_successes(const load_generator& load, std::uint64_t count, const char* phase) {
  auto so_far = load.snapshot().successes;
  bool going = load.wait_successes(so_far + count, 30s);
  BOOST_REQUIRE_MESSAGE(going, "load stalled " << phase << ": " << load.snapshot().summary());
}

json::object require_clean_stop(prefork::testing::server& server) {
  BOOST_REQUIRE_NO_THROW(server.signal(SIGTERM));
  auto status = server.wait_exit(30s);
  BOOST_REQUIRE_MESSAGE(status.has_value(), "no exit after TERM\n" << server.log_tail(40));
  BOOST_TEST(status->code == 0, status->to_string());
  auto stopped = server.find_log("stopped");
  BOOST_REQUIRE_MESSAGE(stopped.size() == 1u, "expected one \"stopped\" line\n" << server.log_tail(40));
  BOOST_TEST((log_int(stopped[0], "lost") == 0), json::serialize(stopped[0]));
  BOOST_TEST(wait_group_gone(server.pid()));
  return stopped[0];
}

prefork::testing::server_options boost_test_options() {
  prefork::testing::server_options options;
  options.on_stop_failure = [](const std::string& message) { BOOST_ERROR(message); };
  return options;
}

}  // namespace prefork::test_support
