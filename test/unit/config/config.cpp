#include "prefork/config.hpp"

#include <boost/json.hpp>
#include <boost/test/unit_test.hpp>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>

using prefork::parse_config;

namespace {

// The error message for `json_text`, or "" if it parsed.
std::string error_of(std::string_view json_text) {
  auto parsed = parse_config(json_text);
  return parsed ? std::string() : parsed.error().message;
}

prefork::config parse_ok(std::string_view json_text) {
  auto parsed = parse_config(json_text);
  BOOST_TEST_REQUIRE(parsed.has_value(), (parsed ? "" : parsed.error().message));
  return *parsed;
}

void check_errors(std::initializer_list<std::pair<std::string_view, std::string_view>> cases) {
  for (const auto& [json_text, expected] : cases) {
    BOOST_TEST_CONTEXT(json_text) { BOOST_TEST(error_of(json_text) == expected); }
  }
}

// config has no operator== (the header is shared); compare every field.
void check_same(const prefork::config& a, const prefork::config& b) {
  BOOST_TEST((a.bind == b.bind));
  BOOST_TEST(a.workers == b.workers);
  BOOST_TEST(a.worker_connections == b.worker_connections);
  BOOST_TEST(a.backlog == b.backlog);
  BOOST_TEST(a.timeout.count() == b.timeout.count());
  BOOST_TEST(a.graceful_timeout.count() == b.graceful_timeout.count());
  BOOST_TEST(a.max_requests == b.max_requests);
  BOOST_TEST(a.max_requests_jitter == b.max_requests_jitter);
  BOOST_TEST(a.keepalive.count() == b.keepalive.count());
  BOOST_TEST((a.dispatch == b.dispatch));
  BOOST_TEST(a.restart.min_uptime.count() == b.restart.min_uptime.count());
  BOOST_TEST(a.restart.backoff_initial.count() == b.restart.backoff_initial.count());
  BOOST_TEST(a.restart.backoff_max.count() == b.restart.backoff_max.count());
  BOOST_TEST(a.control == b.control);
  BOOST_TEST(a.socket_mode == b.socket_mode);
  BOOST_TEST(a.socket_mode_bits == b.socket_mode_bits);
  BOOST_TEST((a.pid_file == b.pid_file));
  BOOST_TEST((a.log.level == b.log.level));
  BOOST_TEST(a.log.file == b.log.file);
  BOOST_TEST((a.log.format == b.log.format));
  BOOST_TEST(a.app == b.app);
  BOOST_TEST(a.exec == b.exec, boost::test_tools::per_element());
  BOOST_TEST(a.http.max_header_bytes == b.http.max_header_bytes);
  BOOST_TEST(a.http.max_body_bytes == b.http.max_body_bytes);
  BOOST_TEST(a.http.request_timeout.count() == b.http.request_timeout.count());
  BOOST_TEST((a.metrics == b.metrics));
}

// A config where every key differs from its default.
constexpr std::string_view everything_set = R"({
  "bind": ["unix:/tmp/a.sock", "127.0.0.1:0", "[::1]:8080", "fd://3"],
  "workers": 7,
  "worker_connections": 50,
  "backlog": 16,
  "timeout": 2.5,
  "graceful_timeout": 0,
  "max_requests": 1000,
  "max_requests_jitter": 50,
  "keepalive": 0.25,
  "dispatch": "round-robin",
  "restart": {"min_uptime_ms": 0, "backoff_initial_ms": 1, "backoff_max_ms": 1},
  "control": "/tmp/x.ctl",
  "socket_mode": "0600",
  "pid_file": "/tmp/x.pid",
  "log": {"level": "trace", "file": "/tmp/x.log", "format": "json"},
  "app": "testbed",
  "exec": ["python3", "-m", "prefork_wsgi", "app:app"],
  "http": {"max_header_bytes": 256, "max_body_bytes": 0, "request_timeout": 0.001},
  "metrics": "127.0.0.1:9100"
})";

// A directory under /tmp removed at the end of the test.
struct temp_dir {
  std::filesystem::path path;
  temp_dir() {
    auto pattern = (std::filesystem::temp_directory_path() / "prefork-config-XXXXXX").string();
    BOOST_TEST_REQUIRE(::mkdtemp(pattern.data()) != nullptr);
    path = pattern;
  }
  ~temp_dir() {
    std::error_code ignored;
    std::filesystem::remove_all(path, ignored);
  }
  std::filesystem::path write(const std::string& name, std::string_view content) const {
    const auto file = path / name;
    std::ofstream(file) << content;
    return file;
  }
};

}  // namespace

BOOST_AUTO_TEST_SUITE(config)

BOOST_AUTO_TEST_CASE(auto_worker_count_is_two_per_cpu_plus_one) {
  const unsigned cpus = std::thread::hardware_concurrency();
  const int expected = cpus == 0 ? 3 : std::min<int>(2 * static_cast<int>(cpus) + 1, 1024);
  BOOST_TEST(prefork::auto_worker_count() == expected);
  BOOST_TEST(prefork::auto_worker_count() >= 3);
}

BOOST_AUTO_TEST_CASE(defaults_match_the_spec) {
  const auto cfg = prefork::default_config();
  BOOST_TEST_REQUIRE(cfg.bind.size() == 1u);
  BOOST_TEST(to_string(cfg.bind[0]) == "unix:run/preforkd.sock");
  BOOST_TEST(cfg.workers_auto);
  BOOST_TEST(cfg.workers == prefork::auto_worker_count());
  BOOST_TEST(cfg.worker_connections == 1000);
  BOOST_TEST(cfg.backlog == 1024);
  BOOST_TEST(cfg.timeout.count() == 30000);
  BOOST_TEST(cfg.graceful_timeout.count() == 30000);
  BOOST_TEST(cfg.max_requests == 0);
  BOOST_TEST(cfg.keepalive.count() == 5000);
  BOOST_TEST((cfg.dispatch == prefork::dispatch_kind::least_connections));
  BOOST_TEST(cfg.restart.min_uptime.count() == 1000);
  BOOST_TEST(cfg.restart.backoff_initial.count() == 100);
  BOOST_TEST(cfg.restart.backoff_max.count() == 30000);
  BOOST_TEST(cfg.control == "run/preforkd.ctl");
  BOOST_TEST(cfg.socket_mode == "0660");
  BOOST_TEST(cfg.socket_mode_bits == 0660u);
  BOOST_TEST(!cfg.pid_file);
  BOOST_TEST((cfg.log.level == prefork::log_level::info));
  BOOST_TEST(cfg.log.file == "-");
  BOOST_TEST((cfg.log.format == prefork::log_format::text));
  BOOST_TEST(cfg.app == "hello");
  BOOST_TEST(cfg.exec.empty());
  BOOST_TEST(cfg.http.max_header_bytes == 8192u);
  BOOST_TEST(cfg.http.max_body_bytes == 1048576u);
  BOOST_TEST(cfg.http.request_timeout.count() == 10000);
  BOOST_TEST(!cfg.metrics);
  check_same(parse_ok("{}"), cfg);
  check_same(parse_ok(" \n{ }\n"), cfg);
}

BOOST_AUTO_TEST_CASE(every_key_is_read) {
  const auto cfg = parse_ok(everything_set);
  BOOST_TEST_REQUIRE(cfg.bind.size() == 4u);
  BOOST_TEST(to_string(cfg.bind[2]) == "[::1]:8080");
  BOOST_TEST(!cfg.workers_auto);
  BOOST_TEST(cfg.workers == 7);
  BOOST_TEST(cfg.worker_connections == 50);
  BOOST_TEST(cfg.backlog == 16);
  BOOST_TEST(cfg.timeout.count() == 2500);
  BOOST_TEST(cfg.graceful_timeout.count() == 0);
  BOOST_TEST(cfg.max_requests == 1000);
  BOOST_TEST(cfg.max_requests_jitter == 50);
  BOOST_TEST(cfg.keepalive.count() == 250);
  BOOST_TEST((cfg.dispatch == prefork::dispatch_kind::round_robin));
  BOOST_TEST(cfg.restart.min_uptime.count() == 0);
  BOOST_TEST(cfg.restart.backoff_initial.count() == 1);
  BOOST_TEST(cfg.restart.backoff_max.count() == 1);
  BOOST_TEST(cfg.control == "/tmp/x.ctl");
  BOOST_TEST(cfg.socket_mode == "0600");
  BOOST_TEST(cfg.socket_mode_bits == 0600u);
  BOOST_TEST((cfg.pid_file == std::optional<std::string>("/tmp/x.pid")));
  BOOST_TEST((cfg.log.level == prefork::log_level::trace));
  BOOST_TEST(cfg.log.file == "/tmp/x.log");
  BOOST_TEST((cfg.log.format == prefork::log_format::json));
  BOOST_TEST(cfg.app == "testbed");
  BOOST_TEST(cfg.exec == (std::vector<std::string>{"python3", "-m", "prefork_wsgi", "app:app"}),
             boost::test_tools::per_element());
  BOOST_TEST(cfg.http.max_header_bytes == 256u);
  BOOST_TEST(cfg.http.max_body_bytes == 0u);
  BOOST_TEST(cfg.http.request_timeout.count() == 1);
  BOOST_TEST_REQUIRE(cfg.metrics.has_value());
  BOOST_TEST(to_string(*cfg.metrics) == "127.0.0.1:9100");
}

BOOST_AUTO_TEST_CASE(partial_objects_keep_other_defaults) {
  const auto cfg = parse_ok(R"({"log": {"level": "debug"}, "restart": {"backoff_max_ms": 500},
                                "http": {"max_body_bytes": 5}})");
  BOOST_TEST((cfg.log.level == prefork::log_level::debug));
  BOOST_TEST(cfg.log.file == "-");
  BOOST_TEST(cfg.restart.backoff_max.count() == 500);
  BOOST_TEST(cfg.restart.backoff_initial.count() == 100);
  BOOST_TEST(cfg.http.max_header_bytes == 8192u);
}

BOOST_AUTO_TEST_CASE(accepted_forms) {
  BOOST_TEST(to_string(parse_ok(R"({"bind": "127.0.0.1:80"})").bind.at(0)) == "127.0.0.1:80");
  BOOST_TEST(parse_ok(R"({"workers": "auto"})").workers == prefork::auto_worker_count());
  BOOST_TEST(parse_ok(R"({"workers": "auto"})").workers_auto);
  BOOST_TEST(parse_ok(R"({"workers": 4.0})").workers == 4);
  BOOST_TEST(parse_ok(R"({"workers": 1024})").workers == 1024);
  BOOST_TEST(parse_ok(R"({"workers": 1e1})").workers == 10);
  BOOST_TEST(parse_ok(R"({"timeout": 0.5})").timeout.count() == 500);
  BOOST_TEST(parse_ok(R"({"keepalive": 0})").keepalive.count() == 0);
  BOOST_TEST(parse_ok(R"({"graceful_timeout": 1e9})").graceful_timeout.count() == 1000000000000);
  BOOST_TEST(!parse_ok(R"({"pid_file": null})").pid_file);
  BOOST_TEST(!parse_ok(R"({"metrics": null})").metrics);
  BOOST_TEST(parse_ok(R"({"socket_mode": "777"})").socket_mode_bits == 0777u);
  BOOST_TEST(parse_ok(R"({"socket_mode": "0"})").socket_mode_bits == 0u);
  BOOST_TEST(parse_ok(R"({"max_requests": 9223372036854775807})").max_requests == 9223372036854775807L);
  BOOST_TEST(parse_ok(R"({"workers": 2, "workers": 3})").workers == 3);  // last wins
}

BOOST_AUTO_TEST_CASE(invalid_json_reports_line_and_column) {
  check_errors({
      {"", "invalid JSON at line 1 column 1: incomplete JSON"},
      {"{}x", "invalid JSON at line 1 column 3: extra data"},
      {"{\"a\":1,}", "invalid JSON at line 1 column 8: syntax error"},
      {"{\n  \"workers\": 2,\n  oops\n}", "invalid JSON at line 3 column 3: syntax error"},
      {"{\n  \"bind\": [\"unix:a\"\n", "invalid JSON at line 3 column 1: incomplete JSON"},
  });
}

BOOST_AUTO_TEST_CASE(top_level_must_be_an_object) {
  check_errors({
      {"[1]", "expected a JSON object at the top level, got an array"},
      {"[]", "expected a JSON object at the top level, got an empty array"},
      {"\"x\"", "expected a JSON object at the top level, got \"x\""},
      {"3", "expected a JSON object at the top level, got 3"},
      {"null", "expected a JSON object at the top level, got null"},
  });
}

BOOST_AUTO_TEST_CASE(unknown_keys) {
  check_errors({
      {R"({"wrokers": 3})", R"(unknown key "wrokers")"},
      {R"({"workers": 3, "extra": {}})", R"(unknown key "extra")"},
      {R"({"restart": {"min_uptime": 3}})", R"(unknown key "restart.min_uptime")"},
      {R"({"log": {"levle": "info"}})", R"(unknown key "log.levle")"},
      {R"({"http": {"max_headers": 1}})", R"(unknown key "http.max_headers")"},
      {R"({"a\"b": 1})", R"(unknown key "a\"b")"},
  });
}

BOOST_AUTO_TEST_CASE(bind_errors) {
  const std::string what = R"("bind": expected a bind address string or a non-empty array of them)";
  BOOST_TEST(error_of(R"({"bind": 5})") == what + ", got 5");
  BOOST_TEST(error_of(R"({"bind": []})") == what + ", got an empty array");
  BOOST_TEST(error_of(R"({"bind": {}})") == what + ", got an object");
  check_errors({
      {R"({"bind": ["unix:a", 5]})", R"("bind[1]": expected a bind address string, got 5)"},
      {R"({"bind": ["unix:a", "127.0.0.1:99999"]})", R"("bind[1]": "127.0.0.1:99999": port must be 0..65535)"},
      {R"({"bind": "unix:"})", R"("bind": "unix:": socket path is empty)"},
  });
}

BOOST_AUTO_TEST_CASE(workers_errors) {
  check_errors({
      {R"({"workers": "lots"})", R"("workers": expected an integer >= 1 or "auto", got "lots")"},
      {R"({"workers": 0})", R"("workers": expected an integer >= 1 or "auto", got 0)"},
      {R"({"workers": -3})", R"("workers": expected an integer >= 1 or "auto", got -3)"},
      {R"({"workers": 4.5})", R"("workers": expected an integer >= 1 or "auto", got 4.5)"},
      {R"({"workers": true})", R"("workers": expected an integer >= 1 or "auto", got true)"},
      {R"({"workers": null})", R"("workers": expected an integer >= 1 or "auto", got null)"},
      {R"({"workers": "AUTO"})", R"("workers": expected an integer >= 1 or "auto", got "AUTO")"},
      {R"({"workers": 1025})", R"("workers": must be at most 1024, got 1025)"},
      {R"({"workers": 18446744073709551615})", R"("workers": must be at most 1024, got 18446744073709551615)"},
  });
}

BOOST_AUTO_TEST_CASE(integer_errors) {
  check_errors({
      {R"({"worker_connections": 0})", R"("worker_connections": expected an integer >= 1, got 0)"},
      {R"({"worker_connections": "9"})", R"("worker_connections": expected an integer >= 1, got "9")"},
      {R"({"worker_connections": 4294967296})", R"("worker_connections": must be at most 2147483647, got 4294967296)"},
      {R"({"backlog": 1.5})", R"("backlog": expected an integer >= 1, got 1.5)"},
      {R"({"backlog": []})", R"("backlog": expected an integer >= 1, got an empty array)"},
      {R"({"max_requests": -1})", R"("max_requests": expected an integer >= 0, got -1)"},
      {R"({"max_requests": 18446744073709551615})",
       R"("max_requests": must be at most 9223372036854775807, got 18446744073709551615)"},
      {R"({"max_requests_jitter": false})", R"("max_requests_jitter": expected an integer >= 0, got false)"},
  });
}

BOOST_AUTO_TEST_CASE(duration_errors) {
  check_errors({
      {R"({"timeout": 0})", R"("timeout": expected a number of seconds > 0, got 0)"},
      {R"({"timeout": -1})", R"("timeout": expected a number of seconds > 0, got -1)"},
      {R"({"timeout": "30"})", R"("timeout": expected a number of seconds > 0, got "30")"},
      {R"({"timeout": 0.0001})", R"("timeout": must be at least 0.001 seconds, got 1e-04)"},
      {R"({"timeout": 1e10})", R"("timeout": must be at most 1e+09 seconds, got 1e+10)"},
      {R"({"graceful_timeout": -0.5})", R"("graceful_timeout": expected a number of seconds >= 0, got -0.5)"},
      {R"({"keepalive": null})", R"("keepalive": expected a number of seconds >= 0, got null)"},
      {R"({"http": {"request_timeout": 0}})", R"("http.request_timeout": expected a number of seconds > 0, got 0)"},
  });
}

BOOST_AUTO_TEST_CASE(choice_errors) {
  check_errors({
      {R"({"dispatch": "random"})", R"("dispatch": expected one of least-connections, round-robin, got "random")"},
      {R"({"dispatch": 1})", R"("dispatch": expected one of least-connections, round-robin, got 1)"},
      {R"({"log": {"level": "loud"}})",
       R"("log.level": expected one of trace, debug, info, warning, error, fatal, got "loud")"},
      {R"({"log": {"format": "xml"}})", R"("log.format": expected one of text, json, got "xml")"},
  });
}

BOOST_AUTO_TEST_CASE(restart_errors) {
  check_errors({
      {R"({"restart": 5})", R"("restart": expected an object, got 5)"},
      {R"({"restart": {"backoff_max_ms": -5}})", R"("restart.backoff_max_ms": expected an integer >= 0, got -5)"},
      {R"({"restart": {"min_uptime_ms": "1s"}})", R"("restart.min_uptime_ms": expected an integer >= 0, got "1s")"},
      {R"({"restart": {"backoff_initial_ms": 0}})", R"("restart.backoff_initial_ms": expected an integer >= 1, got 0)"},
      {R"({"restart": {"backoff_initial_ms": 200, "backoff_max_ms": 100}})",
       R"("restart.backoff_max_ms": must be >= restart.backoff_initial_ms (200), got 100)"},
      {R"({"restart": {"backoff_initial_ms": 50000}})",
       R"("restart.backoff_max_ms": must be >= restart.backoff_initial_ms (50000), got 30000)"},
      // Beyond ~31 years a clock's now() plus the delay would overflow.
      {R"({"restart": {"backoff_max_ms": 9223372036854775807}})",
       R"("restart.backoff_max_ms": must be at most 1000000000000, got 9223372036854775807)"},
      {R"({"restart": {"min_uptime_ms": 1000000000001}})",
       R"("restart.min_uptime_ms": must be at most 1000000000000, got 1000000000001)"},
      {R"({"restart": {"backoff_initial_ms": 1e15, "backoff_max_ms": 1e15}})",
       R"("restart.backoff_initial_ms": must be at most 1000000000000, got 1e+15)"},
  });
}

BOOST_AUTO_TEST_CASE(string_errors) {
  check_errors({
      {R"({"control": ""})", R"("control": expected a non-empty string, got "")"},
      {R"({"control": null})", R"("control": expected a non-empty string, got null)"},
      {R"({"app": 3})", R"("app": expected a non-empty string, got 3)"},
      {R"({"app": ""})", R"("app": expected a non-empty string, got "")"},
      {R"({"log": {"file": ""}})", R"("log.file": expected a non-empty string, got "")"},
      {R"({"log": []})", R"("log": expected an object, got an empty array)"},
      {R"({"pid_file": ""})", R"("pid_file": expected a non-empty string or null, got "")"},
      {R"({"pid_file": 1})", R"("pid_file": expected a non-empty string or null, got 1)"},
  });
  // Long values are cut in messages.
  const auto message = error_of(R"({"app": ")" + std::string(200, 'x') + R"(", "x": 1})");
  BOOST_TEST(message == R"(unknown key "x")");
  const auto long_level = error_of(R"({"log": {"level": ")" + std::string(200, 'x') + R"("}})");
  BOOST_TEST(long_level.size() < 150u);
  BOOST_TEST(long_level.ends_with("xxx...\""));
}

BOOST_AUTO_TEST_CASE(socket_mode_errors) {
  const std::string what = R"(expected a string of octal digits such as "0660", got )";
  for (const auto* bad :
       {"660", "\"\"", "\"0o660\"", "\"0999\"", "\"-660\"", "\"+660\"", "\"66 0\"", "\"99999999999999999999999\""}) {
    BOOST_TEST(error_of(R"({"socket_mode": )" + std::string(bad) + "}") == "\"socket_mode\": " + what + bad);
  }
  check_errors({
      {R"({"socket_mode": "01777"})", R"("socket_mode": must be at most "0777", got "01777")"},
      {R"({"socket_mode": "7777777777777777777777777"})",
       R"("socket_mode": must be at most "0777", got "7777777777777777777777777")"},
  });
}

BOOST_AUTO_TEST_CASE(http_errors) {
  check_errors({
      {R"({"http": "big"})", R"("http": expected an object, got "big")"},
      {R"({"http": {"max_header_bytes": 255}})", R"("http.max_header_bytes": expected an integer >= 256, got 255)"},
      {R"({"http": {"max_body_bytes": -1}})", R"("http.max_body_bytes": expected an integer >= 0, got -1)"},
  });
}

BOOST_AUTO_TEST_CASE(metrics_errors) {
  check_errors({
      {R"({"metrics": 9100})", R"("metrics": expected a bind address string, got 9100)"},
      {R"({"metrics": "9100"})", R"("metrics": "9100": expected unix:PATH, HOST:PORT, [V6]:PORT or fd://N)"},
  });
}

BOOST_AUTO_TEST_CASE(exec_forms_and_errors) {
  // A string is split at whitespace (no shell); null clears a command.
  BOOST_TEST(parse_ok(R"({"exec": "  python3 -m   prefork_wsgi\tapp:app "})").exec ==
                 (std::vector<std::string>{"python3", "-m", "prefork_wsgi", "app:app"}),
             boost::test_tools::per_element());
  BOOST_TEST(parse_ok(R"({"exec": ["/bin/my worker", "--flag"]})").exec ==
                 (std::vector<std::string>{"/bin/my worker", "--flag"}),
             boost::test_tools::per_element());
  BOOST_TEST(parse_ok(R"({"exec": null})").exec.empty());
  const std::string what =
      "\"exec\": expected a command (a non-empty array of non-empty strings, or a string), or null";
  check_errors({
      {R"({"exec": []})", what + ", got an empty array"},
      {R"({"exec": ""})", what + ", got \"\""},
      {R"({"exec": "   "})", what + ", got \"   \""},
      {R"({"exec": ["python3", ""]})", "\"exec[1]\": expected a non-empty string, got \"\""},
      {R"({"exec": ["python3", 3]})", "\"exec[1]\": expected a non-empty string, got 3"},
      {R"({"exec": 7})", what + ", got 7"},
  });
}

BOOST_AUTO_TEST_CASE(first_error_wins) {
  BOOST_TEST(error_of(R"({"workers": 0, "backlog": 0, "typo": 1})") ==
             R"("workers": expected an integer >= 1 or "auto", got 0)");
  BOOST_TEST(error_of(R"({"restart": {"x": 1}, "backlog": 0})") == R"("backlog": expected an integer >= 1, got 0)");
}

BOOST_AUTO_TEST_CASE(to_json_uses_file_syntax) {
  auto cfg = prefork::default_config();
  const auto expected = boost::json::parse(R"({
    "bind": ["unix:run/preforkd.sock"], "workers": )" +
                                           std::to_string(cfg.workers) + R"(,
    "worker_connections": 1000, "backlog": 1024, "timeout": 30, "graceful_timeout": 30,
    "max_requests": 0, "max_requests_jitter": 0, "keepalive": 5, "dispatch": "least-connections",
    "restart": {"min_uptime_ms": 1000, "backoff_initial_ms": 100, "backoff_max_ms": 30000},
    "control": "run/preforkd.ctl", "socket_mode": "0660", "pid_file": null,
    "log": {"level": "info", "file": "-", "format": "text"}, "app": "hello", "exec": null,
    "http": {"max_header_bytes": 8192, "max_body_bytes": 1048576, "request_timeout": 10},
    "metrics": null})");
  BOOST_TEST(boost::json::serialize(prefork::to_json(cfg)) == boost::json::serialize(expected));

  const auto json = prefork::to_json(parse_ok(everything_set)).as_object();
  BOOST_TEST(json.at("timeout").as_double() == 2.5);
  BOOST_TEST(json.at("http").at("request_timeout").as_double() == 0.001);
  BOOST_TEST(json.at("graceful_timeout").as_int64() == 0);
  BOOST_TEST(json.at("workers").as_int64() == 7);
  BOOST_TEST(json.at("socket_mode").as_string() == "0600");
  BOOST_TEST(json.at("pid_file").as_string() == "/tmp/x.pid");
  BOOST_TEST(json.at("metrics").as_string() == "127.0.0.1:9100");
  BOOST_TEST(json.at("bind").as_array().at(3).as_string() == "fd://3");
}

BOOST_AUTO_TEST_CASE(round_trip_through_json) {
  for (const auto& original :
       {prefork::default_config(), parse_ok(everything_set), parse_ok(R"({"timeout": 1.234, "keepalive": 86400.001,
                                            "socket_mode": "00660", "workers": "auto"})")}) {
    const auto text = boost::json::serialize(prefork::to_json(original));
    BOOST_TEST_CONTEXT(text) {
      const auto again = parse_ok(text);
      check_same(again, original);
      // "auto" is printed resolved (SPEC: --check-config shows a number), so only that flag
      // does not survive; everything observable does.
      BOOST_TEST(!again.workers_auto);
    }
  }
}

BOOST_AUTO_TEST_CASE(load_config_file_reads_and_names_the_file) {
  temp_dir dir;
  const auto good = dir.write("good.json", R"({"workers": 2, "app": "echo"})");
  auto loaded = prefork::load_config_file(good);
  BOOST_TEST_REQUIRE(loaded.has_value());
  BOOST_TEST(loaded->workers == 2);
  BOOST_TEST(loaded->app == "echo");

  const auto bad = dir.write("bad.json", R"({"workers": "lots"})");
  auto invalid = prefork::load_config_file(bad);
  BOOST_TEST_REQUIRE(!invalid.has_value());
  BOOST_TEST(invalid.error().message == "\"" + bad.string() +
                                            R"(": "workers": expected an integer >= 1 or "auto", )"
                                            R"(got "lots")");

  const auto broken = dir.write("broken.json", "{\n");
  auto unparsable = prefork::load_config_file(broken);
  BOOST_TEST_REQUIRE(!unparsable.has_value());
  BOOST_TEST(unparsable.error().message ==
             "\"" + broken.string() + "\": invalid JSON at line 2 column 1: incomplete JSON");
}

BOOST_AUTO_TEST_CASE(load_config_file_errors) {
  temp_dir dir;
  auto missing = prefork::load_config_file(dir.path / "x.json");
  BOOST_TEST_REQUIRE(!missing.has_value());
  BOOST_TEST(missing.error().message ==
             "cannot read config file \"" + (dir.path / "x.json").string() + "\": No such file or directory");
  auto directory = prefork::load_config_file(dir.path);
  BOOST_TEST_REQUIRE(!directory.has_value());
  BOOST_TEST(directory.error().message == "cannot read config file \"" + dir.path.string() + "\": Is a directory");
  auto relative = prefork::load_config_file("x.json-that-does-not-exist");
  BOOST_TEST_REQUIRE(!relative.has_value());
  BOOST_TEST(relative.error().message ==
             "cannot read config file \"x.json-that-does-not-exist\": No such file or directory");
}

BOOST_AUTO_TEST_CASE(a_programs_rules_set_defaults_and_apps) {
  prefork::config_rules rules;
  rules.apps = {"kv", "admin"};
  rules.defaults.app = "kv";
  rules.defaults.control = "kv.ctl";
  rules.defaults.log.level = prefork::log_level::warning;

  // The file's keys replace the defaults one by one, nested keys included.
  auto parsed = parse_config(R"({"log": {"format": "json"}, "app": "admin"})", rules);
  BOOST_TEST_REQUIRE(parsed.has_value(), parsed.error().message);
  BOOST_TEST(parsed->control == "kv.ctl");
  BOOST_TEST((parsed->log.level == prefork::log_level::warning));
  BOOST_TEST((parsed->log.format == prefork::log_format::json));
  BOOST_TEST(parsed->app == "admin");
  auto empty = parse_config("{}", rules);
  BOOST_TEST_REQUIRE(empty.has_value(), empty.error().message);
  BOOST_TEST(empty->app == "kv");

  // `app` must be one of the program's apps; its other rules still apply first.
  auto unknown = parse_config(R"({"app": "hello"})", rules);
  BOOST_TEST_REQUIRE(!unknown.has_value());
  BOOST_TEST(unknown.error().message == R"("app": unknown app "hello" (this program serves: kv, admin))");
  auto empty_name = parse_config(R"({"app": ""})", rules);
  BOOST_TEST_REQUIRE(!empty_name.has_value());
  BOOST_TEST(empty_name.error().message == R"("app": expected a non-empty string, got "")");
  // Without apps in the rules, any name passes (preforkd's parser alone).
  BOOST_TEST(parse_ok(R"({"app": "anything"})").app == "anything");
}

namespace {

// An app's section as kv-server reads it: {"max_keys": N >= 1, "timeout": seconds,
// "limits": {"line": N >= 16}, "name": "..."}, every key optional.
void check_kv(const boost::json::value& section) {
  prefork::section_reader reader(section);
  std::int64_t max_keys = 0;
  reader.integer("max_keys", 1, max_keys, 1000);
  std::chrono::milliseconds timeout{0};
  reader.seconds("timeout", timeout);
  auto limits = reader.object("limits");
  std::int64_t line = 0;
  limits.integer("line", 16, line);
  limits.reject_unknown_keys();
  std::string name;
  reader.text("name", name);
  bool verbose = false;
  reader.boolean("verbose", verbose);
  reader.reject_unknown_keys();
}

prefork::config_rules kv_rules() {
  prefork::config_rules rules;
  rules.apps = {"kv", "echo"};
  rules.defaults.app = "kv";
  rules.sections = {{"kv", &check_kv}};
  return rules;
}

std::string kv_error_of(std::string_view json_text) {
  auto parsed = parse_config(json_text, kv_rules());
  return parsed ? std::string() : parsed.error().message;
}

}  // namespace

BOOST_AUTO_TEST_CASE(an_apps_section_is_kept_and_checked) {
  auto parsed = parse_config(R"({"workers": 2, "kv": {"max_keys": 10, "limits": {"line": 64}}})", kv_rules());
  BOOST_TEST_REQUIRE(parsed.has_value(), parsed.error().message);
  BOOST_TEST(parsed->app_section("kv") == boost::json::parse(R"({"max_keys": 10, "limits": {"line": 64}})"));
  BOOST_TEST(parsed->app_section("other").is_null());
  // Printed back as given, and read again the same.
  const auto printed = prefork::to_json(*parsed);
  BOOST_TEST(printed.at("kv") == parsed->app_section("kv"));
  auto again = parse_config(boost::json::serialize(printed), kv_rules());
  BOOST_TEST_REQUIRE(again.has_value(), again.error().message);
  check_same(*parsed, *again);
  BOOST_TEST(again->app_sections == parsed->app_sections);

  // Absent, the check runs with null (every key absent), and nothing is kept.
  auto absent = parse_config("{}", kv_rules());
  BOOST_TEST_REQUIRE(absent.has_value(), absent.error().message);
  BOOST_TEST(absent->app_sections.empty());
  // Selected or not, the section is the file's: checked the same while echo serves.
  BOOST_TEST(kv_error_of(R"({"app": "echo", "kv": {"max_keys": 10}})").empty());
  BOOST_TEST(kv_error_of(R"({"app": "echo", "kv": {"max_keys": 0}})") ==
             R"("kv.max_keys": expected an integer >= 1, got 0)");
}

BOOST_AUTO_TEST_CASE(an_apps_section_errors_name_the_whole_key) {
  BOOST_TEST(kv_error_of(R"({"kv": {"max_keys": "x"}})") == R"("kv.max_keys": expected an integer >= 1, got "x")");
  BOOST_TEST(kv_error_of(R"({"kv": {"max_keys": 5000}})") == R"("kv.max_keys": must be at most 1000, got 5000)");
  BOOST_TEST(kv_error_of(R"({"kv": {"max_keys": 2.5}})") == R"("kv.max_keys": expected an integer >= 1, got 2.5)");
  BOOST_TEST(kv_error_of(R"({"kv": {"timeout": 0}})") == R"("kv.timeout": expected a number of seconds > 0, got 0)");
  BOOST_TEST(kv_error_of(R"({"kv": {"name": ""}})") == R"("kv.name": expected a non-empty string, got "")");
  BOOST_TEST(kv_error_of(R"({"kv": {"verbose": 1}})") == R"("kv.verbose": expected true or false, got 1)");
  BOOST_TEST(kv_error_of(R"({"kv": {"limits": {"line": 4}}})") ==
             R"("kv.limits.line": expected an integer >= 16, got 4)");
  BOOST_TEST(kv_error_of(R"({"kv": {"limits": []}})") == R"("kv.limits": expected an object, got an empty array)");
  BOOST_TEST(kv_error_of(R"({"kv": {"colour": "red"}})") == R"(unknown key "kv.colour")");
  BOOST_TEST(kv_error_of(R"({"kv": {"limits": {"lines": 20}}})") == R"(unknown key "kv.limits.lines")");
  BOOST_TEST(kv_error_of(R"({"kv": 3})") == R"("kv": expected an object, got 3)");
  // prefork's own keys come first; an unknown top-level key is still an error.
  BOOST_TEST(kv_error_of(R"({"kv": {"max_keys": "x"}, "workers": 0})") ==
             R"("workers": expected an integer >= 1 or "auto", got 0)");
  BOOST_TEST(kv_error_of(R"({"kv": {}, "kvv": {}})") == R"(unknown key "kvv")");
  // Without the app's rule, its section is an unknown key as before.
  BOOST_TEST(error_of(R"({"kv": {"max_keys": 10}})") == R"(unknown key "kv")");

  // Any other exception of a check names the section and says what().
  prefork::config_rules throwing = kv_rules();
  throwing.sections = {{"kv", [](const boost::json::value&) { throw std::runtime_error("no database here"); }}};
  auto failed = parse_config("{}", throwing);
  BOOST_TEST_REQUIRE(!failed.has_value());
  BOOST_TEST(failed.error().message == R"("kv": no database here)");
  // A section without a check is kept as given.
  prefork::config_rules unchecked = kv_rules();
  unchecked.sections = {{"kv", nullptr}};
  auto kept = parse_config(R"({"kv": [1, 2]})", unchecked);
  BOOST_TEST_REQUIRE(kept.has_value(), kept.error().message);
  BOOST_TEST(kept->app_section("kv") == boost::json::parse("[1, 2]"));
}

BOOST_AUTO_TEST_CASE(a_files_section_replaces_a_defaults_whole) {
  prefork::config_rules rules = kv_rules();
  rules.defaults.app_sections["kv"] = {{"max_keys", 5}, {"name", "default"}};
  auto parsed = parse_config(R"({"kv": {"name": "file"}})", rules);
  BOOST_TEST_REQUIRE(parsed.has_value(), parsed.error().message);
  BOOST_TEST(parsed->app_section("kv") == boost::json::parse(R"({"name": "file"})"));
  auto defaults = parse_config("{}", rules);
  BOOST_TEST_REQUIRE(defaults.has_value(), defaults.error().message);
  BOOST_TEST(defaults->app_section("kv").at("max_keys") == 5);
  // The defaults' section is checked like the file's.
  rules.defaults.app_sections["kv"] = {{"max_keys", 0}};
  BOOST_TEST(parse_config("{}", rules).error().message == R"("kv.max_keys": expected an integer >= 1, got 0)");
}

BOOST_AUTO_TEST_CASE(sections_of_apps_nobody_registered_can_be_kept) {
  // preforkctl -c FILE: a program's file, whose apps it cannot see.
  prefork::config_rules foreign;
  foreign.unknown = prefork::config_rules::unknown_keys::keep_as_section;
  auto parsed =
      parse_config(R"({"control": "kv.ctl", "kv": {"max_keys": "unchecked"}, "log": {"level": "debug"}})", foreign);
  BOOST_TEST_REQUIRE(parsed.has_value(), parsed.error().message);
  BOOST_TEST(parsed->control == "kv.ctl");
  BOOST_TEST(parsed->app_section("kv").at("max_keys") == "unchecked");
  BOOST_TEST(!parsed->app_sections.contains("log"));  // prefork's own nested keys stay its own
  BOOST_TEST((parsed->log.level == prefork::log_level::debug));
  // Only objects can be sections: a scalar is still a typo.
  BOOST_TEST(parse_config(R"({"wrokers": 2})", foreign).error().message == R"(unknown key "wrokers")");
  BOOST_TEST(parse_config(R"({"log": {"levle": "debug"}})", foreign).error().message == R"(unknown key "log.levle")");
}

BOOST_AUTO_TEST_CASE(section_reader_alone) {
  // What an app's worker hook does with a checked section.
  const auto section = boost::json::parse(R"({"max_keys": 7, "timeout": 0.25, "grace": 0, "name": "n", "free": [1]})");
  prefork::section_reader reader(section);
  std::int64_t max_keys = 1;
  reader.integer("max_keys", 1, max_keys);
  std::chrono::milliseconds timeout{0};
  reader.seconds("timeout", timeout);
  std::chrono::milliseconds grace{5};
  reader.seconds("grace", grace, prefork::section_reader::zero::allowed);
  BOOST_CHECK_THROW(reader.seconds("grace", grace), prefork::config_value_error);  // 0 is rejected by default
  std::string name;
  reader.text("name", name);
  std::int64_t absent = 42;
  reader.integer("absent", 0, absent);
  BOOST_TEST(max_keys == 7);
  BOOST_TEST(timeout.count() == 250);
  BOOST_TEST(grace.count() == 0);
  BOOST_TEST(name == "n");
  BOOST_TEST(absent == 42);
  BOOST_CHECK_THROW(reader.reject_unknown_keys(), prefork::config_value_error);
  BOOST_TEST(reader.find("free")->is_array());
  BOOST_CHECK_NO_THROW(reader.reject_unknown_keys());
  try {
    reader.fail("max_keys", "too many for this machine");
    BOOST_FAIL("fail() returned");
  } catch (const prefork::config_value_error& e) {
    BOOST_TEST(e.key() == "max_keys");
    BOOST_TEST(e.why() == "too many for this machine");
    BOOST_TEST(std::string(e.what()) == R"("max_keys": too many for this machine)");
  }
  BOOST_CHECK_THROW(prefork::section_reader(boost::json::value("x")), prefork::config_value_error);
  BOOST_TEST(prefork::describe_config_value(boost::json::value(boost::json::array{})) == "an empty array");
}

BOOST_AUTO_TEST_SUITE_END()
