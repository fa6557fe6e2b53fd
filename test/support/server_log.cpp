#include "support/server_log.hpp"

#include "support/lifecycle.hpp"
#include "support/procfs.hpp"
#include "support/server_process.hpp"

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

std::vector<json::object> parse_log_lines(std::string_view text) {
  std::vector<json::object> lines;
  while (!text.empty()) {
    auto end = text.find('\n');
    std::string_view line = text.substr(0, end);
    text = end == std::string_view::npos ? std::string_view() : text.substr(end + 1);
    if (line.empty() || line.front() != '{') continue;
    boost::system::error_code ec;
    auto value = json::parse(line, ec);
    if (!ec && value.is_object()) lines.push_back(std::move(value.as_object()));
  }
  return lines;
}

std::vector<json::object> find_log(const prefork::testing::server& server, std::string_view msg) {
  auto lines = parse_log_lines(server.log_text());
  std::erase_if(lines, [&](const json::object& line) { return log_string(line, "msg") != msg; });
  return lines;
}

std::optional<json::object> wait_for_log(const prefork::testing::server& server, std::string_view msg,
                                         std::chrono::milliseconds timeout,
                                         const std::function<bool(const json::object&)>& match) {
  auto deadline = clock_type::now() + timeout;
  for (;;) {
    for (auto& line : find_log(server, msg)) {
      if (!match || match(line)) return std::move(line);
    }
    if (clock_type::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(20ms);
  }
}

std::optional<endpoint> listening_endpoint(const prefork::testing::server& server, std::string_view bind) {
  for (const auto& line : find_log(server, "listening")) {
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
      last = "status: " + error.code() + ": " + error.what();
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

prefork::testing::server_options boost_test_options() {
  prefork::testing::server_options options;
  options.on_stop_failure = [](const std::string& message) { BOOST_ERROR(message); };
  return options;
}

}  // namespace prefork::test_support
