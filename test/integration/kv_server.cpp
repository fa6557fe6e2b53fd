// The example kv-server (apps/examples/kv-server), a program of its own on prefork::run:
// its own name, description, version and defaults in --help, --version and errors, and
// only its own app.
#include "prefork/run.hpp"
#include "prefork/testing.hpp"
#include "support/programs.hpp"

#include <boost/json/parse.hpp>
#include <boost/test/unit_test.hpp>

#include <csignal>
#include <filesystem>
#include <string>
#include <vector>

using namespace prefork::test_support;
using prefork::testing::run_result;
using prefork::testing::temp_directory;
using prefork::testing::write_file;
namespace fs = std::filesystem;
namespace json = boost::json;
using namespace std::chrono_literals;

namespace {

// The text with every run of whitespace made one space: --help wraps its lines.
std::string squeezed(std::string_view text) {
  std::string out;
  for (const char c : text) {
    const bool space = c == ' ' || c == '\n';
    if (!space || (!out.empty() && out.back() != ' ')) out += space ? ' ' : c;
  }
  return out;
}

bool exits_with(const run_result& result, int code) {
  return result.status && result.status->signal == 0 && result.status->code == code;
}

// kv-server args... in a fresh temp dir that holds `config_text` as kv.json.
run_result run_kv_server(const std::vector<std::string>& args, const std::string& config_text = "{}") {
  temp_directory dir;
  write_file(dir / "kv.json", config_text);
  return run_program(kv_server_path(), args, dir.path(), 20s);
}

}  // namespace

BOOST_AUTO_TEST_SUITE(kv_server)

BOOST_AUTO_TEST_CASE(help_shows_its_own_name_description_and_app) {
  auto result = run_kv_server({"--help"});
  BOOST_TEST(exits_with(result, 0), result.describe());
  BOOST_TEST(result.out.starts_with("Usage: kv-server [-c FILE]"), result.describe());
  for (const auto* expected : {"A line-protocol key-value store", "application to serve: kv (the default)",
                               "(default: kv.ctl)", "(default: unix:kv.sock)", "--control PATH"}) {
    BOOST_TEST(squeezed(result.out).find(expected) != std::string::npos,
               expected << " is missing: " << result.describe());
  }
  // preforkd's apps and description are not this program's.
  for (const auto* absent : {"hello", "testbed", "echo", "pre-forking connection supervisor"}) {
    BOOST_TEST(result.out.find(absent) == std::string::npos, absent << " is there: " << result.describe());
  }
}

BOOST_AUTO_TEST_CASE(version_names_it_and_prefork) {
  auto result = run_kv_server({"--version"});
  BOOST_TEST(exits_with(result, 0), result.describe());
  BOOST_TEST(result.out == "kv-server 1.0.0 (prefork " + std::string(prefork::version()) + ")\n");
}

BOOST_AUTO_TEST_CASE(its_defaults_are_its_own) {
  auto result = run_kv_server({"--check-config"});
  BOOST_TEST_REQUIRE(exits_with(result, 0), result.describe());
  const auto effective = json::parse(result.out).as_object();
  BOOST_TEST(effective.at("app") == "kv");
  BOOST_TEST(effective.at("control") == "kv.ctl");
  BOOST_TEST(effective.at("bind") == json::array{"unix:kv.sock"});
}

BOOST_AUTO_TEST_CASE(an_app_it_does_not_serve_is_exit_2) {
  // Before, `--app hello` was accepted and kv served anyway.
  auto option = run_kv_server({"--app", "hello"});
  BOOST_TEST(exits_with(option, 2), option.describe());
  BOOST_TEST(option.err == "kv-server: \"--app\": unknown app \"hello\" (this program serves: kv)\n");

  auto file = run_kv_server({"-c", "kv.json"}, R"({"app": "echo"})");
  BOOST_TEST(exits_with(file, 2), file.describe());
  BOOST_TEST(file.err == "kv-server: \"kv.json\": \"app\": unknown app \"echo\" (this program serves: kv)\n");
}

BOOST_AUTO_TEST_CASE(it_runs_with_its_defaults_in_any_directory) {
  // No run/ directory, no config file, no option: kv.sock and kv.ctl in the working directory.
  temp_directory dir;
  prefork::testing::process_options options;
  options.arguments = {"-w", "1"};
  options.directory = dir.path();
  prefork::testing::process server(kv_server_path(), options);
  auto ready = run_preforkctl({"-s", "kv.ctl", "wait-ready", "--timeout", "20"}, dir.path());
  BOOST_TEST(exits_with(ready, 0), ready.describe());
  BOOST_TEST(fs::exists(dir / "kv.sock"));
  BOOST_TEST(server.stop(SIGTERM, 10s).code == 0, "kv-server did not exit 0 on TERM");
  BOOST_TEST(!fs::exists(dir / "kv.sock"));
}

BOOST_AUTO_TEST_SUITE_END()
