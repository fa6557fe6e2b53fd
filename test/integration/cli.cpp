// preforkd's command line (SPEC section 2): --version, --help, --check-config with
// command-line overrides, --control, exit status 2 with a message naming the key for every
// usage or configuration error, and 3 with what to do for a socket directory that is missing.
#include "prefork/run.hpp"
#include "prefork/testing.hpp"
#include "support/programs.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>
#include <boost/test/unit_test.hpp>

#include <filesystem>
#include <string>
#include <vector>

using namespace prefork::test_support;
using prefork::testing::run_result;
using prefork::testing::temp_directory;
using prefork::testing::write_file;
namespace fs = std::filesystem;
namespace json = boost::json;

namespace {

// Runs `--check-config -c preforkd.json extra...` on `config_text` and parses stdout.
struct checked_config {
  run_result run;
  json::value effective;
  std::string parse_error;
};

checked_config check_config(const std::string& config_text, const std::vector<std::string>& extra = {}) {
  temp_directory dir;
  write_file(dir / "preforkd.json", config_text);
  std::vector<std::string> args{"--check-config", "-c", "preforkd.json"};
  args.insert(args.end(), extra.begin(), extra.end());
  checked_config result;
  result.run = run_preforkd(args, dir.path());
  boost::system::error_code ec;
  result.effective = json::parse(result.run.out, ec);
  if (ec) result.parse_error = ec.message();
  // --check-config only checks: it binds nothing.
  if (fs::exists(fs::symlink_status(dir / "app.sock"))) result.parse_error += " (and it created app.sock)";
  return result;
}

// Runs preforkd with `args` in a temp dir holding `config_text` as preforkd.json.
run_result run_with_config(const std::string& config_text, const std::vector<std::string>& args) {
  temp_directory dir;
  write_file(dir / "preforkd.json", config_text);
  return run_preforkd(args, dir.path());
}

// The text with every run of whitespace made one space: --help wraps its lines.
std::string squeezed(std::string_view text) {
  std::string out;
  for (const char c : text) {
    const bool space = c == ' ' || c == '\n';
    if (!space || (!out.empty() && out.back() != ' ')) out += space ? ' ' : c;
  }
  return out;
}

bool exits_with(const run_result& result, int code) { return result.status && result.status->code == code; }

}  // namespace

BOOST_AUTO_TEST_SUITE(cli)

BOOST_AUTO_TEST_CASE(version_exits_0) {
  temp_directory dir;
  auto result = run_preforkd({"--version"}, dir.path());
  BOOST_TEST(exits_with(result, 0), result.describe());
  BOOST_TEST(result.out.find_first_of("0123456789") != std::string::npos, "no version number on stdout");
  const std::string version(prefork::version());
  BOOST_TEST(result.out == "preforkd " + version + " (prefork " + version + ")\n");
}

BOOST_AUTO_TEST_CASE(help_exits_0_and_lists_options) {
  temp_directory dir;
  auto result = run_preforkd({"--help"}, dir.path());
  BOOST_TEST(exits_with(result, 0), result.describe());
  BOOST_TEST(result.out.find("--check-config") != std::string::npos, result.describe());
  BOOST_TEST(result.out.starts_with("Usage: preforkd "), result.describe());
  for (const auto* expected : {"pre-forking connection supervisor", "--control PATH", "(default: run/preforkd.ctl)",
                               "hello (the default), testbed, echo"}) {
    BOOST_TEST(squeezed(result.out).find(expected) != std::string::npos,
               expected << " is missing: " << result.describe());
  }
}

BOOST_AUTO_TEST_CASE(an_unknown_app_is_exit_2_naming_the_apps) {
  temp_directory dir;
  auto result = run_preforkd({"--check-config", "--app", "kv"}, dir.path());
  BOOST_TEST(exits_with(result, 2), result.describe());
  BOOST_TEST(result.err == "preforkd: \"--app\": unknown app \"kv\" (this program serves: hello, testbed, echo)\n");

  auto from_file = run_with_config(R"({"app": "kv"})", {"-c", "preforkd.json"});
  BOOST_TEST(exits_with(from_file, 2), from_file.describe());
  BOOST_TEST(from_file.err ==
             "preforkd: \"preforkd.json\": \"app\": unknown app \"kv\" (this program serves: hello, testbed, echo)\n");
}

BOOST_AUTO_TEST_CASE(control_option_overrides_the_files_control) {
  auto checked = check_config(R"({"control": "file.ctl"})", {"--control", "option.ctl"});
  BOOST_REQUIRE_MESSAGE(exits_with(checked.run, 0), checked.run.describe());
  BOOST_TEST(checked.effective.at("control") == "option.ctl");
  auto empty = run_with_config("{}", {"-c", "preforkd.json", "--control", ""});
  BOOST_TEST(exits_with(empty, 2), empty.describe());
  BOOST_TEST(empty.err == "preforkd: \"--control\": expected a non-empty string, got \"\"\n");

  // A running master listens on the option's path, not the file's ("ctl.sock").
  prefork::testing::server_options options;
  options.arguments = {"--control", "option.ctl"};
  options.wait = prefork::testing::start_wait::no_wait;
  options.on_stop_failure = [](const std::string& message) { BOOST_ERROR(message); };
  prefork::testing::server preforkd(options);
  auto ready = run_preforkctl({"-s", "option.ctl", "wait-ready", "--timeout", "20"}, preforkd.directory());
  BOOST_TEST(exits_with(ready, 0), ready.describe() << "\n" << preforkd.log_tail());
  BOOST_TEST(!fs::exists(preforkd.directory() / "ctl.sock"));
  BOOST_TEST(preforkd.stop().code == 0);
  BOOST_TEST(!fs::exists(preforkd.directory() / "option.ctl"), "the control socket outlived the master");
}

BOOST_AUTO_TEST_CASE(a_missing_directory_for_the_control_socket_is_exit_3_saying_what_to_do) {
  // The default control socket is run/preforkd.ctl: a directory without run/ cannot hold it.
  temp_directory dir;
  auto result = run_preforkd({"-b", "127.0.0.1:0"}, dir.path());
  BOOST_TEST(exits_with(result, 3), result.describe());
  for (const auto* expected : {"cannot open the control socket", "run/preforkd.ctl", "/run does not exist",
                               "create it first, or choose another path with --control PATH"}) {
    BOOST_TEST(result.err.find(expected) != std::string::npos, expected << " is missing: " << result.describe());
  }

  // The default listener is run/preforkd.sock: the same message, naming -b.
  auto listener = run_preforkd({}, dir.path());
  BOOST_TEST(exits_with(listener, 3), listener.describe());
  for (const auto* expected : {"cannot listen", "run/preforkd.sock", "create it first, or listen elsewhere with -b"}) {
    BOOST_TEST(listener.err.find(expected) != std::string::npos, expected << " is missing: " << listener.describe());
  }
}

BOOST_AUTO_TEST_CASE(check_config_prints_effective_config) {
  auto checked = check_config(R"({"workers": 3, "bind": ["unix:app.sock", "127.0.0.1:0"], "socket_mode": "0600",
                                  "log": {"format": "json", "level": "info"}})");
  BOOST_REQUIRE_MESSAGE(exits_with(checked.run, 0), checked.run.describe());
  BOOST_REQUIRE_MESSAGE(checked.parse_error.empty() && checked.effective.is_object(),
                        "stdout is not a JSON object: " << checked.parse_error << "\n"
                                                        << checked.run.describe());
  const auto& effective = checked.effective.as_object();
  BOOST_REQUIRE(effective.contains("workers"));
  BOOST_TEST(effective.at("workers").is_int64());
  BOOST_TEST(effective.at("workers") == json::value(3));
  BOOST_TEST(effective.at("socket_mode") == json::value("0600"));
  BOOST_REQUIRE(effective.contains("bind"));
  BOOST_REQUIRE(effective.at("bind").is_array());
  BOOST_TEST(effective.at("bind").as_array().size() == 2u);
  // Keys not in the file come back with their defaults.
  BOOST_TEST(effective.contains("graceful_timeout"));
  BOOST_TEST(effective.contains("keepalive"));
}

BOOST_AUTO_TEST_CASE(check_config_resolves_auto_workers_to_a_number) {
  auto checked = check_config(R"({"workers": "auto"})");
  BOOST_REQUIRE_MESSAGE(exits_with(checked.run, 0), checked.run.describe());
  BOOST_REQUIRE_MESSAGE(checked.effective.is_object(), checked.parse_error << "\n" << checked.run.describe());
  const auto& workers = checked.effective.as_object().at("workers");
  BOOST_REQUIRE_MESSAGE(workers.is_int64(), "workers is not an integer: " << workers);
  BOOST_TEST(workers.as_int64() >= 3);  // 2 x CPUs + 1
  BOOST_TEST(workers.as_int64() % 2 == 1);
}

BOOST_AUTO_TEST_CASE(bind_option_replaces_the_files_bind) {
  auto checked = check_config(R"({"bind": ["unix:a.sock", "127.0.0.1:0"]})", {"-b", "unix:x.sock"});
  BOOST_REQUIRE_MESSAGE(exits_with(checked.run, 0), checked.run.describe());
  BOOST_REQUIRE_MESSAGE(checked.effective.is_object(), checked.parse_error << "\n" << checked.run.describe());
  const auto& bind = checked.effective.as_object().at("bind");
  BOOST_REQUIRE(bind.is_array());
  BOOST_REQUIRE_EQUAL(bind.as_array().size(), 1u);
  BOOST_REQUIRE(bind.as_array()[0].is_string());
  std::string only(bind.as_array()[0].as_string());
  BOOST_TEST(only.starts_with("unix:"));
  BOOST_TEST(only.ends_with("x.sock"));

  auto twice = check_config(R"({"bind": ["unix:a.sock"]})", {"-b", "unix:x.sock", "-b", "127.0.0.1:0"});
  BOOST_REQUIRE_MESSAGE(exits_with(twice.run, 0), twice.run.describe());
  BOOST_REQUIRE_MESSAGE(twice.effective.is_object(), twice.parse_error << "\n" << twice.run.describe());
  BOOST_TEST(twice.effective.as_object().at("bind").as_array().size() == 2u);
}

BOOST_AUTO_TEST_CASE(workers_option_overrides_the_file) {
  auto checked = check_config(R"({"workers": 3})", {"-w", "5"});
  BOOST_REQUIRE_MESSAGE(exits_with(checked.run, 0), checked.run.describe());
  BOOST_REQUIRE_MESSAGE(checked.effective.is_object(), checked.parse_error << "\n" << checked.run.describe());
  BOOST_TEST(checked.effective.as_object().at("workers") == json::value(5));
}

BOOST_AUTO_TEST_CASE(unknown_config_key_is_exit_2_naming_the_key) {
  auto result = run_with_config(R"({"workers": 2, "wrokers_typo": 3})", {"-c", "preforkd.json"});
  BOOST_TEST(exits_with(result, 2), result.describe());
  BOOST_TEST(result.err.find("wrokers_typo") != std::string::npos, result.describe());
}

BOOST_AUTO_TEST_CASE(unknown_key_is_also_an_error_for_check_config) {
  auto result = run_with_config(R"({"wrokers_typo": 3})", {"--check-config", "-c", "preforkd.json"});
  BOOST_TEST(exits_with(result, 2), result.describe());
  BOOST_TEST(result.err.find("wrokers_typo") != std::string::npos, result.describe());
}

BOOST_AUTO_TEST_CASE(invalid_json_is_exit_2) {
  auto result = run_with_config(R"({"workers": 2,)", {"-c", "preforkd.json"});
  BOOST_TEST(exits_with(result, 2), result.describe());
  BOOST_TEST(!result.err.empty(), "no message on stderr");
}

BOOST_AUTO_TEST_CASE(wrong_type_is_exit_2_naming_the_key) {
  auto result = run_with_config(R"({"workers": "lots"})", {"-c", "preforkd.json"});
  BOOST_TEST(exits_with(result, 2), result.describe());
  BOOST_TEST(result.err.find("workers") != std::string::npos, result.describe());

  auto nested = run_with_config(R"({"http": {"max_header_bytes": "big"}})", {"-c", "preforkd.json"});
  BOOST_TEST(exits_with(nested, 2), nested.describe());
  BOOST_TEST(nested.err.find("max_header_bytes") != std::string::npos, nested.describe());
}

BOOST_AUTO_TEST_CASE(impossible_value_is_exit_2_naming_the_key) {
  auto result = run_with_config(R"({"workers": 0})", {"-c", "preforkd.json"});
  BOOST_TEST(exits_with(result, 2), result.describe());
  BOOST_TEST(result.err.find("workers") != std::string::npos, result.describe());
}

BOOST_AUTO_TEST_CASE(bad_workers_option_is_exit_2) {
  auto result = run_with_config("{}", {"-c", "preforkd.json", "-w", "lots"});
  BOOST_TEST(exits_with(result, 2), result.describe());
}

BOOST_AUTO_TEST_CASE(missing_config_file_is_exit_2) {
  temp_directory dir;
  auto result = run_preforkd({"-c", "no-such-file.json"}, dir.path());
  BOOST_TEST(exits_with(result, 2), result.describe());
  BOOST_TEST(result.err.find("no-such-file.json") != std::string::npos, result.describe());
}

BOOST_AUTO_TEST_CASE(unknown_option_is_exit_2) {
  temp_directory dir;
  auto result = run_preforkd({"--frobnicate"}, dir.path());
  BOOST_TEST(exits_with(result, 2), result.describe());
  BOOST_TEST(!result.err.empty(), "no message on stderr");
}

BOOST_AUTO_TEST_SUITE_END()
