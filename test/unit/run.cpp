// prefork::run's identity and defaults, through the paths that return before the master
// starts: --help, --version, --check-config and the configuration errors (exit 2).
#include "prefork/run.hpp"
#include "unit_support/temp_dir.hpp"

#include <boost/asio/use_awaitable.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/test/unit_test.hpp>

#include <cstdint>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

namespace json = boost::json;

namespace {

boost::asio::awaitable<void> serve_nothing(prefork::connection) { co_return; }

// What one call of prefork::run printed and returned.
struct outcome {
  int status = -1;
  std::string out;
  std::string err;
  std::string describe() const { return "status " + std::to_string(status) + "\nout: " + out + "\nerr: " + err; }
};

// Captures std::cout and std::cerr while it lives.
class capture {
 public:
  capture() : out_(std::cout.rdbuf(out_text_.rdbuf())), err_(std::cerr.rdbuf(err_text_.rdbuf())) {}
  ~capture() {
    std::cout.rdbuf(out_);
    std::cerr.rdbuf(err_);
  }
  capture(const capture&) = delete;
  capture& operator=(const capture&) = delete;
  std::string out() const { return out_text_.str(); }
  std::string err() const { return err_text_.str(); }

 private:
  std::ostringstream out_text_, err_text_;
  std::streambuf* out_;
  std::streambuf* err_;
};

outcome call_run(std::vector<std::string> arguments, std::vector<prefork::app> apps,
                 prefork::run_options options = {}) {
  arguments.insert(arguments.begin(), "/opt/api/bin/api-server");
  std::vector<const char*> argv;
  for (const auto& argument : arguments) argv.push_back(argument.c_str());
  argv.push_back(nullptr);
  outcome result;
  capture captured;
  result.status = prefork::run(static_cast<int>(arguments.size()), argv.data(), std::move(apps), std::move(options));
  result.out = captured.out();
  result.err = captured.err();
  return result;
}

std::vector<prefork::app> two_apps() { return {{"api", &serve_nothing}, {"admin", &serve_nothing}}; }

prefork::run_options api_identity() {
  prefork::run_options options;
  options.name = "api";
  options.description = "A JSON API for sums.";
  options.version = "1.2.0";
  return options;
}

// --check-config's output as an object (empty when it is not one).
json::object effective(const outcome& result) {
  boost::system::error_code ec;
  auto value = json::parse(result.out, ec);
  return !ec && value.is_object() ? value.as_object() : json::object{};
}

}  // namespace

BOOST_AUTO_TEST_SUITE(run)

BOOST_AUTO_TEST_CASE(help_shows_the_programs_name_description_and_apps) {
  const auto result = call_run({"--help"}, two_apps(), api_identity());
  BOOST_TEST(result.status == 0, result.describe());
  BOOST_TEST(result.out.starts_with("Usage: api [-c FILE]"), result.describe());
  BOOST_TEST(result.out.find("A JSON API for sums.") != std::string::npos, result.describe());
  BOOST_TEST(result.out.find("api (the default), admin") != std::string::npos, result.describe());
  BOOST_TEST(result.out.find("hello") == std::string::npos, result.describe());
  BOOST_TEST(result.out.find("testbed") == std::string::npos, result.describe());

  // Without a name, argv[0]'s file name; the default app comes first in the list.
  prefork::run_options unnamed;
  unnamed.defaults = {{"app", "admin"}};
  const auto plain = call_run({"--help"}, two_apps(), unnamed);
  BOOST_TEST(plain.out.starts_with("Usage: api-server [-c FILE]"), plain.describe());
  BOOST_TEST(plain.out.find("admin (the default), api") != std::string::npos, plain.describe());
}

BOOST_AUTO_TEST_CASE(version_names_the_program_and_prefork) {
  const auto result = call_run({"--version"}, two_apps(), api_identity());
  BOOST_TEST(result.status == 0, result.describe());
  BOOST_TEST(result.out == "api 1.2.0 (prefork " + std::string(prefork::version()) + ")\n");

  const auto unversioned = call_run({"--version"}, two_apps());
  BOOST_TEST(unversioned.out == "api-server (prefork " + std::string(prefork::version()) + ")\n");
}

BOOST_AUTO_TEST_CASE(the_first_app_is_the_default) {
  const auto result = call_run({"--check-config"}, two_apps());
  BOOST_TEST_REQUIRE(result.status == 0, result.describe());
  BOOST_TEST(effective(result).at("app") == "api");
  // preforkd's other defaults stay (SPEC section 2).
  BOOST_TEST(effective(result).at("control") == "run/preforkd.ctl");
  BOOST_TEST(effective(result).at("bind") == json::array{"unix:run/preforkd.sock"});
}

BOOST_AUTO_TEST_CASE(program_defaults_come_before_the_file_and_the_command_line) {
  prefork::unit_support::temp_dir dir;
  std::ofstream(dir / "api.json") << R"({"log": {"format": "json"}, "bind": "unix:file.sock"})";
  auto options = api_identity();
  options.defaults = {{"bind", "unix:api.sock"},
                      {"control", "api.ctl"},
                      {"app", "admin"},
                      {"log", {{"level", "warning"}}},
                      {"workers", 3}};

  const auto defaults_only = call_run({"--check-config"}, two_apps(), options);
  BOOST_TEST_REQUIRE(defaults_only.status == 0, defaults_only.describe());
  auto printed = effective(defaults_only);
  BOOST_TEST(printed.at("bind") == json::array{"unix:api.sock"});
  BOOST_TEST(printed.at("control") == "api.ctl");
  BOOST_TEST(printed.at("app") == "admin");
  BOOST_TEST(printed.at("workers") == 3);

  const auto with_file =
      call_run({"--check-config", "-c", dir / "api.json", "--control", "option.ctl"}, two_apps(), options);
  BOOST_TEST_REQUIRE(with_file.status == 0, with_file.describe());
  printed = effective(with_file);
  BOOST_TEST(printed.at("bind") == json::array{"unix:file.sock"});  // the file's
  BOOST_TEST(printed.at("control") == "option.ctl");                // the command line's
  BOOST_TEST(printed.at("log").at("format") == "json");             // the file's,
  BOOST_TEST(printed.at("log").at("level") == "warning");           // beside a default nested key
  BOOST_TEST(printed.at("workers") == 3);                           // the program's
}

BOOST_AUTO_TEST_CASE(an_app_the_program_did_not_register_is_exit_2) {
  const auto result = call_run({"--check-config", "--app", "hello"}, two_apps(), api_identity());
  BOOST_TEST(result.status == 2, result.describe());
  BOOST_TEST(result.err == "api: \"--app\": unknown app \"hello\" (this program serves: api, admin)\n");
  BOOST_TEST(result.out.empty());

  prefork::unit_support::temp_dir dir;
  std::ofstream(dir / "api.json") << R"({"app": "testbed"})";
  const auto from_file = call_run({"-c", dir / "api.json"}, two_apps(), api_identity());
  BOOST_TEST(from_file.status == 2, from_file.describe());
  BOOST_TEST(from_file.err == "api: \"" + (dir / "api.json") +
                                  "\": \"app\": unknown app \"testbed\" (this program serves: api, admin)\n");
}

BOOST_AUTO_TEST_CASE(bad_program_defaults_are_exit_2) {
  auto options = api_identity();
  options.defaults = {{"control", 7}};
  const auto result = call_run({"--check-config"}, two_apps(), options);
  BOOST_TEST(result.status == 2, result.describe());
  BOOST_TEST(result.err == "api: program defaults: \"control\": expected a non-empty string, got 7\n");

  options.defaults = {{"app", "hello"}};
  const auto unknown_app = call_run({"--version"}, two_apps(), options);
  BOOST_TEST(unknown_app.status == 2, unknown_app.describe());
  BOOST_TEST(unknown_app.err ==
             "api: program defaults: \"app\": unknown app \"hello\" (this program serves: api, admin)\n");
}

BOOST_AUTO_TEST_CASE(no_app_is_exit_2) {
  const auto result = call_run({"--check-config"}, {}, api_identity());
  BOOST_TEST(result.status == 2, result.describe());
  BOOST_TEST(result.err == "api: no app to serve: prefork::run was given none\n");
}

BOOST_AUTO_TEST_CASE(usage_errors_carry_the_programs_name) {
  const auto result = call_run({"--frobnicate"}, two_apps(), api_identity());
  BOOST_TEST(result.status == 2, result.describe());
  BOOST_TEST(result.err == "api: unrecognised option '--frobnicate' (see --help)\n");
}

// An app with its own section "api": {"limit": N >= 1}.
prefork::app api_with_section() {
  prefork::app api{"api", &serve_nothing};
  api.config_key = "api";
  api.check_config = [](const json::value& section) {
    prefork::section_reader reader(section);
    std::int64_t limit = 1;
    reader.integer("limit", 1, limit);
    reader.reject_unknown_keys();
  };
  return api;
}

BOOST_AUTO_TEST_CASE(an_apps_section_is_checked_and_printed) {
  prefork::unit_support::temp_dir dir;
  std::ofstream(dir / "good.json") << R"({"api": {"limit": 3}})";
  std::ofstream(dir / "bad.json") << R"({"api": {"limit": "x"}})";
  std::ofstream(dir / "typo.json") << R"({"api": {"limmit": 3}})";
  std::ofstream(dir / "other.json") << R"({"apj": {"limit": 3}})";
  const std::vector<prefork::app> apps{api_with_section(), {"admin", &serve_nothing}};

  const auto good = call_run({"--check-config", "-c", dir / "good.json"}, apps, api_identity());
  BOOST_TEST_REQUIRE(good.status == 0, good.describe());
  BOOST_TEST(effective(good).at("api") == json::parse(R"({"limit": 3})"));
  // The section is checked while another app serves too.
  const auto admin = call_run({"--check-config", "-c", dir / "good.json", "--app", "admin"}, apps, api_identity());
  BOOST_TEST(admin.status == 0, admin.describe());

  const auto bad = call_run({"--check-config", "-c", dir / "bad.json"}, apps, api_identity());
  BOOST_TEST(bad.status == 2, bad.describe());
  BOOST_TEST(bad.err == "api: \"" + (dir / "bad.json") + "\": \"api.limit\": expected an integer >= 1, got \"x\"\n");
  const auto typo = call_run({"-c", dir / "typo.json"}, apps, api_identity());
  BOOST_TEST(typo.status == 2, typo.describe());
  BOOST_TEST(typo.err == "api: \"" + (dir / "typo.json") + "\": unknown key \"api.limmit\"\n");
  const auto other = call_run({"-c", dir / "other.json"}, apps, api_identity());
  BOOST_TEST(other.status == 2, other.describe());
  BOOST_TEST(other.err == "api: \"" + (dir / "other.json") + "\": unknown key \"apj\"\n");

  // Program defaults may hold the section; the file's replaces it, and either is checked.
  auto options = api_identity();
  options.defaults = {{"api", {{"limit", 0}}}};
  const auto bad_default = call_run({"--check-config"}, apps, options);
  BOOST_TEST(bad_default.status == 2, bad_default.describe());
  BOOST_TEST(bad_default.err == "api: \"api.limit\": expected an integer >= 1, got 0\n");
  const auto replaced = call_run({"--check-config", "-c", dir / "good.json"}, apps, options);
  BOOST_TEST(replaced.status == 0, replaced.describe());
}

BOOST_AUTO_TEST_CASE(an_apps_config_key_must_be_its_own) {
  auto clash = api_with_section();
  clash.config_key = "http";
  const auto result = call_run({"--check-config"}, {clash}, api_identity());
  BOOST_TEST(result.status == 2, result.describe());
  BOOST_TEST(result.err == "api: app \"api\": its config_key \"http\" is one of prefork's own keys\n");

  auto keyless = api_with_section();
  keyless.config_key.clear();
  const auto no_key = call_run({"--version"}, {keyless}, api_identity());
  BOOST_TEST(no_key.status == 2, no_key.describe());
  BOOST_TEST(no_key.err == "api: app \"api\": check_config needs a config_key\n");
}

BOOST_AUTO_TEST_SUITE_END()
