// preforkd's command line (SPEC section 2): --version, --help, --check-config with
// command-line overrides, and exit status 2 with a message naming the key for every
// usage or configuration error.
#include "prefork/testing/process.hpp"
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

bool exits_with(const run_result& result, int code) { return result.status && result.status->code == code; }

}  // namespace

BOOST_AUTO_TEST_SUITE(cli)

BOOST_AUTO_TEST_CASE(version_exits_0) {
  temp_directory dir;
  auto result = run_preforkd({"--version"}, dir.path());
  BOOST_TEST(exits_with(result, 0), result.describe());
  BOOST_TEST(result.out.find_first_of("0123456789") != std::string::npos, "no version number on stdout");
}

BOOST_AUTO_TEST_CASE(help_exits_0_and_lists_options) {
  temp_directory dir;
  auto result = run_preforkd({"--help"}, dir.path());
  BOOST_TEST(exits_with(result, 0), result.describe());
  BOOST_TEST(result.out.find("--check-config") != std::string::npos, result.describe());
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
