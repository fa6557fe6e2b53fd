// preforkd behind a real nginx (Debian's /usr/sbin/nginx) proxying a local TCP port to
// preforkd's Unix socket with keep-alive upstream connections, using the upstream and
// location settings of conf/nginx-upstream.conf: requests arrive intact, nginx reuses its
// upstream connections, and a reload of preforkd under load costs no request.
#include "prefork/testing.hpp"
#include "support/http_client.hpp"
#include "support/json_fields.hpp"
#include "support/load.hpp"
#include "support/programs.hpp"
#include "support/server_helpers.hpp"

#include <boost/json/serialize.hpp>
#include <boost/test/unit_test.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <memory>
#include <regex>
#include <thread>

using namespace prefork::test_support;
using namespace std::chrono_literals;
namespace fs = std::filesystem;
namespace json = boost::json;
using clock_type = std::chrono::steady_clock;

namespace {

const fs::path nginx_binary = "/usr/sbin/nginx";
constexpr auto request_timeout = 10s;
const std::string hello_body = "Hello, world!\n";

// The settings of conf/nginx-upstream.conf, used when the file cannot be found.
constexpr std::string_view embedded_site = R"(
upstream preforkd {
    server unix:/run/preforkd/preforkd.sock max_fails=0;
    keepalive 64;
    keepalive_requests 10000;
    keepalive_timeout 4s;
}
server {
    listen 80;
    server_name _;
    location / {
        proxy_pass http://preforkd;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_set_header Host $host;
        proxy_set_header X-Real-IP $remote_addr;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_set_header X-Forwarded-Proto $scheme;
        proxy_connect_timeout 2s;
        proxy_read_timeout 30s;
        proxy_send_timeout 30s;
    }
}
)";

struct nginx_available {
  boost::test_tools::assertion_result operator()(boost::unit_test::test_unit_id) const {
    boost::test_tools::assertion_result result(::access(nginx_binary.c_str(), X_OK) == 0);
    result.message() << "skipped: " << nginx_binary.string() << " is missing (scripts/setup installs it)";
    return result;
  }
};

// conf/nginx-upstream.conf of the source tree: $PREFORK_SOURCE_DIR, else three levels above
// preforkd (build/bin/preforkd). Empty when not found.
fs::path shipped_site_file() {
  std::vector<fs::path> candidates;
  if (const char* source = std::getenv("PREFORK_SOURCE_DIR"); source != nullptr && *source != '\0') {
    candidates.push_back(fs::path(source) / "conf" / "nginx-upstream.conf");
  }
  candidates.push_back(preforkd_path().parent_path().parent_path().parent_path() / "conf" / "nginx-upstream.conf");
  for (const auto& candidate : candidates) {
    if (fs::exists(candidate)) return candidate;
  }
  return {};
}

// The site text with its upstream pointed at `socket` and its only listener at
// 127.0.0.1:`port`; nullopt when the text has no `server unix:` or `listen` to rewrite.
std::optional<std::string> rewrite_site(const std::string& site, const fs::path& socket, unsigned short port) {
  static const std::regex upstream_server(R"(server\s+unix:[^\s;]+)");
  static const std::regex listen_line(R"(\n[ \t]*listen[^;]*;)");
  if (!std::regex_search(site, upstream_server) || !std::regex_search(site, listen_line)) return std::nullopt;
  std::string text = std::regex_replace(site, upstream_server, "server unix:" + socket.string(),
                                        std::regex_constants::format_first_only);
  // First listener to ours, the others (e.g. [::]:80) removed.
  std::string ours = "\n    listen 127.0.0.1:" + std::to_string(port) + ";";
  std::string result;
  bool replaced = false;
  auto begin = std::sregex_iterator(text.begin(), text.end(), listen_line);
  std::size_t copied = 0;
  for (auto match = begin; match != std::sregex_iterator(); ++match) {
    result.append(text, copied, static_cast<std::size_t>(match->position()) - copied);
    if (!replaced) result += ours;
    replaced = true;
    copied = static_cast<std::size_t>(match->position() + match->length());
  }
  result.append(text, copied);
  return result;
}

unsigned short free_tcp_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  BOOST_REQUIRE(fd >= 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = 0;
  socklen_t length = sizeof address;
  bool bound = ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0 &&
               ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) == 0;
  ::close(fd);
  BOOST_REQUIRE(bound);
  return ntohs(address.sin_port);
}

// nginx in the foreground (`daemon off`, master and one worker) in its own temp prefix.
class nginx_process {
 public:
  nginx_process(const fs::path& upstream_socket) {
    auto site_file = shipped_site_file();
    std::string site = site_file.empty() ? std::string(embedded_site) : prefork::testing::read_file(site_file);
    for (int attempt = 0; attempt < 3; ++attempt) {
      port_ = free_tcp_port();
      auto rewritten = rewrite_site(site, upstream_socket, port_);
      if (!rewritten && !site_file.empty()) {
        BOOST_TEST_MESSAGE(site_file.string() << " has no upstream server or listen line to rewrite; "
                                              << "using the embedded copy");
        site = std::string(embedded_site);
        site_file.clear();
        rewritten = rewrite_site(site, upstream_socket, port_);
      }
      BOOST_REQUIRE(rewritten.has_value());
      BOOST_TEST_MESSAGE("nginx site from "
                         << (site_file.empty() ? std::string("the embedded copy") : site_file.string()));
      prefork::testing::write_file(dir_ / "nginx.conf", main_config(*rewritten));
      prefork::testing::process_options options;
      const std::string prefix = dir_.path().string() + "/";
      options.arguments = {"-p", prefix, "-c", (dir_ / "nginx.conf").string(), "-e", (dir_ / "error.log").string()};
      options.directory = dir_.path();
      options.stdout_file = dir_ / "stdout.log";
      options.stderr_file = dir_ / "stderr.log";
      process_ = std::make_unique<prefork::testing::process>(nginx_binary, options);
      if (wait_serving(20s)) return;
      bool port_taken = error_log().find("Address already in use") != std::string::npos;
      stop();
      process_.reset();
      if (!port_taken) break;  // only a lost race for the port is worth another try
    }
    BOOST_FAIL("nginx did not serve on 127.0.0.1:" << port_ << "\nerror.log:\n" << error_log());
  }

  ~nginx_process() { stop(); }
  nginx_process(const nginx_process&) = delete;
  nginx_process& operator=(const nginx_process&) = delete;

  endpoint where() const { return endpoint::tcp("127.0.0.1", port_); }
  std::string error_log() const {
    return prefork::testing::read_file(dir_ / "error.log") + prefork::testing::read_file(dir_ / "stderr.log");
  }
  std::string access_log() const { return prefork::testing::read_file(dir_ / "access.log"); }
  bool running() const { return process_ && process_->running(); }

  // TERM to the whole group (master and workers), then SIGKILL what is left.
  void stop() {
    if (!process_) return;
    process_->signal_group(SIGTERM);
    if (!process_->wait_exit(10s)) BOOST_ERROR("nginx did not exit within 10 s of TERM");
    if (!process_->wait_group_gone(5s)) {
      BOOST_ERROR("nginx workers outlived their master: " << process_->describe_members());
    }
    process_.reset();  // kills and reaps whatever is left
  }

 private:
  std::string main_config(const std::string& site) const {
    const std::string d = dir_.path().string();
    std::string text;
    text += "daemon off;\nmaster_process on;\nworker_processes 1;\n";
    // As root nginx would switch its workers to an unprivileged user that cannot reach the
    // test's socket (its directory is 0700).
    if (::geteuid() == 0) text += "user root;\n";
    text += "pid " + d + "/nginx.pid;\n";
    text += "error_log " + d + "/error.log info;\n";
    text += "events { worker_connections 256; }\n";
    text += "http {\n";
    text += "  access_log " + d + "/access.log;\n";
    for (const char* kind : {"client_body", "proxy", "fastcgi", "uwsgi", "scgi"}) {
      text += "  " + std::string(kind) + "_temp_path " + d + "/" + kind + "_temp;\n";
    }
    text += site;
    text += "\n}\n";
    return text;
  }

  bool wait_serving(std::chrono::milliseconds timeout) {
    auto deadline = clock_type::now() + timeout;
    while (clock_type::now() < deadline) {
      if (!process_->running()) return false;
      auto response = http_get(where(), "/healthz", 2s);
      if (response && response->status == 200) return true;
      std::this_thread::sleep_for(50ms);
    }
    return false;
  }

  prefork::testing::temp_directory dir_;
  unsigned short port_ = 0;
  std::unique_ptr<prefork::testing::process> process_;
};

}  // namespace

BOOST_AUTO_TEST_SUITE(nginx, *boost::unit_test::precondition(nginx_available()))

BOOST_AUTO_TEST_CASE(requests_through_nginx_reach_preforkd) {
  prefork::testing::server server(boost_test_options());
  nginx_process nginx(server.socket_path());

  auto response = http_get(nginx.where(), "/", request_timeout);
  BOOST_REQUIRE_MESSAGE(response.has_value(), "GET / through nginx: " << response.error().message() << "\n"
                                                                      << nginx.error_log());
  BOOST_TEST(response->status == 200u);
  BOOST_TEST(response->body == hello_body);
  BOOST_TEST(response->header("Server").value_or("").starts_with("nginx"), "the response did not pass nginx");
  BOOST_TEST(response->header("Content-Type").value_or("") == "text/plain; charset=utf-8");
  auto missing = http_get(nginx.where(), "/no-such-page", request_timeout);
  BOOST_REQUIRE(missing.has_value());
  BOOST_TEST(missing->status == 404u);
  auto head = http_request(nginx.where(), "HEAD", "/", request_timeout);
  BOOST_REQUIRE(head.has_value());
  BOOST_TEST(head->status == 200u);

  // A keep-alive client, and then concurrent curl-like clients (a connection per request).
  http_connection client;
  BOOST_REQUIRE(!client.connect(nginx.where(), request_timeout));
  for (int i = 0; i < 20; ++i) {
    auto reply = client.request("GET", "/", request_timeout);
    BOOST_REQUIRE_MESSAGE(reply.has_value(), "keep-alive request #" << i << ": " << reply.error().message());
    BOOST_TEST(reply->body == hello_body);
  }
  client.close();

  auto before = server.stats();
  load_options load_config;
  load_config.target = nginx.where();
  load_config.clients = 4;
  load_config.mode = load_mode::connection_per_request;
  load_config.request_timeout = request_timeout;
  load_generator load(load_config);
  bool done = load.wait_successes(400, 60s);
  auto result = load.stop();
  BOOST_TEST_MESSAGE("through nginx: " << result.summary());
  BOOST_TEST(done, "400 requests through nginx did not finish: " << result.summary());
  BOOST_TEST(result.total_failures() == 0u, result.summary() << "\nnginx error.log:\n" << nginx.error_log());

  // nginx kept its upstream connections: far fewer connections reached preforkd than requests.
  auto requests_by = clock_type::now() + 15s;
  json::object after;
  do {
    after = server.stats();
    if (json_int(after, "requests").value_or(0) - json_int(before, "requests").value_or(0) >=
        static_cast<std::int64_t>(result.successes)) {
      break;
    }
    std::this_thread::sleep_for(50ms);
  } while (clock_type::now() < requests_by);
  auto accepted = json_int(after, "accepted").value_or(0) - json_int(before, "accepted").value_or(0);
  auto served = json_int(after, "requests").value_or(0) - json_int(before, "requests").value_or(0);
  BOOST_TEST_MESSAGE("preforkd accepted " << accepted << " connections for " << served << " requests");
  BOOST_TEST(served >= static_cast<std::int64_t>(result.successes), json::serialize(after));
  BOOST_TEST(accepted * 2 < served,
             "nginx did not reuse upstream connections: " << accepted << " accepted for " << served << " requests");
  BOOST_TEST((json_int(after, "lost") == 0));
  BOOST_TEST(nginx.running());
  BOOST_TEST(nginx.error_log().find("[error]") == std::string::npos, "nginx logged errors:\n" << nginx.error_log());
}

BOOST_AUTO_TEST_CASE(reload_behind_nginx_costs_no_request) {
  prefork::testing::server server(boost_test_options());
  nginx_process nginx(server.socket_path());

  load_options load_config;
  load_config.target = nginx.where();
  load_config.clients = 4;
  load_config.mode = load_mode::keep_alive;
  load_config.request_timeout = request_timeout;
  load_generator load(load_config);
  BOOST_REQUIRE_MESSAGE(load.wait_successes(200, 30s), "load did not get going: " << load.snapshot().summary());

  // nginx holds idle keep-alive connections to the old generation: the reload hands them
  // over instead of cutting them (SPEC section 2), so nginx sees no reset.
  BOOST_REQUIRE_NO_THROW(server.signal(SIGHUP));
  auto reloaded_by = clock_type::now() + 30s;
  while (json_int(server.status(), "generation") < 2 && clock_type::now() < reloaded_by) {
    std::this_thread::sleep_for(50ms);
  }
  BOOST_REQUIRE_MESSAGE((json_int(server.status(), "generation") == 2), "no reload within 30 s\n"
                                                                            << server.log_tail(40));
  std::string why;
  BOOST_TEST(wait_settled(server, 2, 30s, &why), why);
  auto so_far = load.snapshot().successes;
  BOOST_TEST(load.wait_successes(so_far + 200, 30s), "load stalled after the reload: " << load.snapshot().summary());
  auto result = load.stop();
  BOOST_TEST_MESSAGE("through nginx across a reload: " << result.summary());
  BOOST_TEST(result.total_failures() == 0u, result.summary() << "\nnginx error.log:\n" << nginx.error_log());
  // stats.requests sums every worker's count, the retired generation's included; it
  // reaches the master with heartbeats and final reports: poll.
  json::object stats;
  auto counted_by = clock_type::now() + 15s;
  do {
    stats = server.stats();
    if (json_int(stats, "requests").value_or(0) >= static_cast<std::int64_t>(result.successes)) break;
    std::this_thread::sleep_for(50ms);
  } while (clock_type::now() < counted_by);
  BOOST_TEST_MESSAGE("stats: " << json::serialize(stats));
  BOOST_TEST((json_int(stats, "requests").value_or(0) >= static_cast<std::int64_t>(result.successes)),
             "stats.requests lost the count of retired workers: " << json::serialize(stats) << " after "
                                                                  << result.successes << " requests");
  BOOST_TEST((json_int(stats, "lost") == 0), json::serialize(stats));
  BOOST_TEST((json_int(stats, "reloads") == 1), json::serialize(stats));
  BOOST_TEST(nginx.error_log().find("[error]") == std::string::npos, "nginx logged errors:\n" << nginx.error_log());
}

BOOST_AUTO_TEST_SUITE_END()
