#include "support/lifecycle.hpp"

#include "support/procfs.hpp"
#include "support/server_helpers.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/test/unit_test.hpp>

#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>

#include <cerrno>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <system_error>
#include <thread>

namespace prefork::test_support {

namespace fs = std::filesystem;
namespace json = boost::json;
using clock_type = std::chrono::steady_clock;

namespace {

std::optional<std::string> read_proc_stat(pid_t pid) {
  std::ifstream in(fs::path("/proc") / std::to_string(pid) / "stat");
  std::ostringstream text;
  text << in.rdbuf();
  if (text.str().empty()) return std::nullopt;
  return text.str();
}

}  // namespace

bool wait_until(const std::function<bool()>& condition, std::chrono::milliseconds timeout,
                std::chrono::milliseconds interval) {
  auto deadline = clock_type::now() + timeout;
  for (;;) {
    if (condition()) return true;
    if (clock_type::now() >= deadline) return false;
    std::this_thread::sleep_for(interval);
  }
}

std::vector<json::object> json_lines_of(const fs::path& file) {
  return prefork::testing::json_lines(prefork::testing::read_file(file));
}

std::vector<json::object> find_log_in(const fs::path& file, std::string_view msg) {
  auto lines = json_lines_of(file);
  std::erase_if(lines, [&](const json::object& line) { return log_string(line, "msg") != msg; });
  return lines;
}

std::optional<std::chrono::system_clock::time_point> log_time(const json::object& line) {
  std::string text = log_string(line, "ts");
  std::tm utc{};
  int millis = 0;
  if (std::sscanf(text.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d.%3dZ", &utc.tm_year, &utc.tm_mon, &utc.tm_mday, &utc.tm_hour,
                  &utc.tm_min, &utc.tm_sec, &millis) != 7) {
    return std::nullopt;
  }
  utc.tm_year -= 1900;
  utc.tm_mon -= 1;
  std::time_t seconds = ::timegm(&utc);
  return std::chrono::system_clock::from_time_t(seconds) + std::chrono::milliseconds(millis);
}

boost::system::result<whoami_reply> whoami(http_connection& connection, std::chrono::milliseconds timeout) {
  auto response = connection.request("GET", "/whoami", timeout);
  if (!response) return response.error();
  auto bad = boost::system::errc::make_error_code(boost::system::errc::bad_message);
  if (response->status != 200) return bad;
  boost::system::error_code ec;
  auto body = json::parse(response->body, ec);
  if (ec || !body.is_object()) return bad;
  const auto& object = body.as_object();
  auto worker = json_int(object, "worker");
  auto pid = json_int(object, "pid");
  auto generation = json_int(object, "generation");
  if (!worker || !pid || !generation) return bad;
  return whoami_reply{*worker, static_cast<pid_t>(*pid), *generation};
}

boost::system::result<whoami_reply> whoami(const endpoint& where, std::chrono::milliseconds timeout) {
  http_connection connection;
  if (auto ec = connection.connect(where, timeout)) return ec;
  return whoami(connection, timeout);
}

paced_keep_alive_clients::paced_keep_alive_clients(endpoint target, int connections, std::chrono::milliseconds pause,
                                                   std::string path)
    : target_(std::move(target)), connections_(connections), pause_(pause), path_(std::move(path)) {
  thread_ = std::thread([this] { run(); });
}

paced_keep_alive_clients::~paced_keep_alive_clients() { stop(); }

load_result paced_keep_alive_clients::snapshot() const {
  std::lock_guard lock(mutex_);
  return result_;
}

load_result paced_keep_alive_clients::stop() {
  stopping_ = true;
  if (thread_.joinable()) thread_.join();
  return snapshot();
}

void paced_keep_alive_clients::run() {
  constexpr auto timeout = std::chrono::seconds(5);
  std::vector<http_connection> connections(static_cast<std::size_t>(connections_));
  auto fail = [&](failure_kind kind, const std::string& text) {
    std::lock_guard lock(mutex_);
    ++result_.failures[static_cast<std::size_t>(kind)];
    if (result_.error_samples.size() < 8) result_.error_samples.push_back(std::string(to_string(kind)) + ": " + text);
  };
  while (!stopping_) {
    for (auto& connection : connections) {
      if (stopping_) break;
      bool reused = connection.is_open();
      if (!reused) {
        if (auto ec = connection.connect(target_, timeout)) {
          fail(classify(ec), "connect: " + ec.message());
          continue;
        }
      }
      auto response = connection.request("GET", path_, timeout);
      if (!response) {
        connection.close();
        fail(classify(response.error()),
             std::string(reused ? "reused" : "new") + " idle-paced connection: " + response.error().message());
        continue;
      }
      if (response->status != 200) {
        connection.close();
        fail(failure_kind::bad_status, "status " + std::to_string(response->status));
        continue;
      }
      std::lock_guard lock(mutex_);
      ++result_.successes;
      if (!response->keep_alive) {
        connection.close();
        ++result_.reconnects;
      }
    }
    std::this_thread::sleep_for(pause_);
  }
}

bool process_alive(pid_t pid) {
  auto stat = read_proc_stat(pid);
  if (!stat) return false;
  auto close = stat->rfind(')');
  if (close == std::string::npos || close + 2 >= stat->size()) return false;
  char state = (*stat)[close + 2];
  return state != 'Z' && state != 'X';
}

std::optional<pid_t> parent_of(pid_t pid) {
  auto stat = read_proc_stat(pid);
  if (!stat) return std::nullopt;
  auto close = stat->rfind(')');
  if (close == std::string::npos) return std::nullopt;
  std::istringstream rest(stat->substr(close + 1));
  char state = 0;
  long parent = 0;
  if (!(rest >> state >> parent)) return std::nullopt;
  return static_cast<pid_t>(parent);
}

subreaper_scope::subreaper_scope() {
  if (::prctl(PR_SET_CHILD_SUBREAPER, 1) != 0) {
    throw std::system_error(errno, std::generic_category(), "prctl(PR_SET_CHILD_SUBREAPER)");
  }
}

subreaper_scope::~subreaper_scope() { ::prctl(PR_SET_CHILD_SUBREAPER, 0); }

std::optional<prefork::testing::exit_status> wait_child(pid_t pid, std::chrono::milliseconds timeout) {
  auto deadline = clock_type::now() + timeout;
  for (;;) {
    int status = 0;
    pid_t reaped = ::waitpid(pid, &status, WNOHANG);
    if (reaped == pid) return prefork::testing::exit_status::from_wait_status(status);
    if (reaped < 0 && errno != EINTR) return std::nullopt;
    if (clock_type::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

}  // namespace prefork::test_support
