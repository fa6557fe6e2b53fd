#include "prefork/cli.hpp"

#include <boost/json/value.hpp>
#include <boost/test/unit_test.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace {

prefork::result<prefork::command_line> parse(std::vector<const char*> arguments) {
  arguments.insert(arguments.begin(), "preforkd");
  return prefork::parse_command_line(static_cast<int>(arguments.size()), arguments.data());
}

prefork::command_line parse_ok(std::vector<const char*> arguments) {
  auto parsed = parse(std::move(arguments));
  BOOST_TEST_REQUIRE(parsed.has_value(), (parsed ? "" : parsed.error().message));
  return *parsed;
}

// The error message for these arguments, or "" if they parsed.
std::string parse_error(std::vector<const char*> arguments) {
  auto parsed = parse(std::move(arguments));
  return parsed ? std::string() : parsed.error().message;
}

prefork::config effective_ok(const prefork::command_line& command) {
  auto cfg = prefork::effective_config(command);
  BOOST_TEST_REQUIRE(cfg.has_value(), (cfg ? "" : cfg.error().message));
  return *cfg;
}

std::string effective_error(const prefork::command_line& command) {
  auto cfg = prefork::effective_config(command);
  return cfg ? std::string() : cfg.error().message;
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

// A config file in a fresh temp dir, removed at the end of the test.
struct temp_config {
  std::filesystem::path dir;
  std::filesystem::path file;
  explicit temp_config(std::string_view content) {
    auto pattern = (std::filesystem::temp_directory_path() / "prefork-cli-XXXXXX").string();
    BOOST_TEST_REQUIRE(::mkdtemp(pattern.data()) != nullptr);
    dir = pattern;
    file = dir / "preforkd.json";
    std::ofstream(file) << content;
  }
  ~temp_config() {
    std::error_code ignored;
    std::filesystem::remove_all(dir, ignored);
  }
};

}  // namespace

BOOST_AUTO_TEST_SUITE(cli)

BOOST_AUTO_TEST_CASE(no_arguments) {
  const auto command = parse_ok({});
  BOOST_TEST(!command.config_file);
  BOOST_TEST(command.binds.empty());
  BOOST_TEST(!command.workers);
  BOOST_TEST(!command.app);
  BOOST_TEST(!command.exec);
  BOOST_TEST(!command.control);
  BOOST_TEST(!command.log_level);
  BOOST_TEST(!command.check_config);
  BOOST_TEST(!command.show_version);
  BOOST_TEST(!command.show_help);
  BOOST_TEST(prefork::parse_command_line(0, nullptr).has_value());
}

BOOST_AUTO_TEST_CASE(every_option) {
  const auto command = parse_ok({"-c",
                                 "conf/x.json",
                                 "-b",
                                 "unix:a.sock",
                                 "--bind",
                                 "127.0.0.1:0",
                                 "-b[::1]:80",
                                 "--bind=fd://3",
                                 "-w",
                                 "4",
                                 "--app",
                                 "echo",
                                 "--exec",
                                 "python3 -m w",
                                 "--control",
                                 "x.ctl",
                                 "--log-level",
                                 "debug",
                                 "--check-config",
                                 "--version",
                                 "--help"});
  BOOST_TEST((command.config_file == std::optional<std::filesystem::path>("conf/x.json")));
  BOOST_TEST((command.binds == std::vector<std::string>{"unix:a.sock", "127.0.0.1:0", "[::1]:80", "fd://3"}));
  BOOST_TEST((command.workers == std::optional<std::string>("4")));
  BOOST_TEST((command.app == std::optional<std::string>("echo")));
  BOOST_TEST((command.exec == std::optional<std::string>("python3 -m w")));
  BOOST_TEST((command.control == std::optional<std::string>("x.ctl")));
  BOOST_TEST((command.log_level == std::optional<std::string>("debug")));
  BOOST_TEST(command.check_config);
  BOOST_TEST(command.show_version);
  BOOST_TEST(command.show_help);
}

BOOST_AUTO_TEST_CASE(long_forms_and_attached_values) {
  const auto command = parse_ok({"--config=x.json", "--workers=auto", "-h"});
  BOOST_TEST_REQUIRE(command.config_file.has_value());
  BOOST_TEST(command.config_file->string() == "x.json");
  BOOST_TEST((command.workers == std::optional<std::string>("auto")));
  BOOST_TEST(command.show_help);
  BOOST_TEST((parse_ok({"-w3"}).workers == std::optional<std::string>("3")));
}

BOOST_AUTO_TEST_CASE(usage_errors) {
  BOOST_TEST(parse_error({"--frobnicate"}) == "unrecognised option '--frobnicate'");
  BOOST_TEST(parse_error({"-x"}) == "unrecognised option '-x'");
  BOOST_TEST(parse_error({"--check"}) == "unrecognised option '--check'");  // no prefix guessing
  BOOST_TEST(parse_error({"-b"}) == "the required argument for option '--bind' is missing");
  BOOST_TEST(parse_error({"--workers"}) == "the required argument for option '--workers' is missing");
  BOOST_TEST(parse_error({"-c", "a.json", "-c", "b.json"}) == "option '--config' cannot be specified more than once");
  BOOST_TEST(parse_error({"-w", "2", "--workers=3"}) == "option '--workers' cannot be specified more than once");
  BOOST_TEST(parse_error({"serve"}) == "unexpected argument 'serve'");
  BOOST_TEST(parse_error({"-w", "2", "--", "-x"}) == "unexpected argument '-x'");
  BOOST_TEST(parse_error({"--version=1"}) == "option '--version' does not take any arguments");
  BOOST_TEST(parse_error({"--control"}) == "the required argument for option '--control' is missing");
  BOOST_TEST(parse_error({"--control", "a", "--control", "b"}) ==
             "option '--control' cannot be specified more than once");
}

BOOST_AUTO_TEST_CASE(usage_text_lists_every_option) {
  const auto text = squeezed(prefork::usage_text("preforkd"));
  BOOST_TEST(text.starts_with("Usage: preforkd [-c FILE] [-b BIND]... [-w N|auto]"));
  for (const auto* option :
       {"--config", "--bind", "--workers", "--app", "--exec", "--control", "--log-level", "--check-config", "--version",
        "--help", "Exit status", "pre-forking connection supervisor", "hello (the default), testbed, echo",
        "run/preforkd.ctl", "unix:run/preforkd.sock"}) {
    BOOST_TEST(text.find(option) != std::string::npos, option);
  }
  BOOST_TEST(prefork::usage_text("/usr/bin/x").starts_with("Usage: /usr/bin/x "));
}

BOOST_AUTO_TEST_CASE(usage_text_of_a_program_of_its_own) {
  prefork::help_details details;
  details.description = "A JSON API for sums.";
  details.apps = {"api", "admin"};
  details.defaults.control = "api.ctl";
  details.defaults.bind = {prefork::parse_bind_address("127.0.0.1:8080").value()};
  const auto text = squeezed(prefork::usage_text("api", details));
  BOOST_TEST(text.starts_with("Usage: api [-c FILE]"));
  for (const auto* expected : {"A JSON API for sums. Runs on prefork", "api (the default), admin", "(default: api.ctl)",
                               "(default: 127.0.0.1:8080)", "--control PATH"}) {
    BOOST_TEST(text.find(expected) != std::string::npos, expected << " is not in\n" << text);
  }
  for (const auto* absent : {"hello", "testbed", "echo", "pre-forking connection supervisor", "preforkd"}) {
    BOOST_TEST(text.find(absent) == std::string::npos, absent << " is in\n" << text);
  }
}

BOOST_AUTO_TEST_CASE(defaults_without_a_file) {
  const auto cfg = effective_ok(parse_ok({}));
  BOOST_TEST_REQUIRE(cfg.bind.size() == 1u);
  BOOST_TEST(to_string(cfg.bind[0]) == "unix:run/preforkd.sock");
  BOOST_TEST(cfg.workers == prefork::auto_worker_count());
  BOOST_TEST(cfg.app == "hello");
}

BOOST_AUTO_TEST_CASE(command_line_overrides_the_file) {
  temp_config file(R"({"bind": ["unix:a.sock", "unix:b.sock"], "workers": 3, "app": "echo",
                       "log": {"level": "error", "format": "json"}, "backlog": 7})");
  const auto file_only = effective_ok(parse_ok({"-c", file.file.c_str()}));
  BOOST_TEST(file_only.bind.size() == 2u);
  BOOST_TEST(file_only.workers == 3);
  BOOST_TEST(file_only.app == "echo");
  BOOST_TEST((file_only.log.level == prefork::log_level::error));

  const auto cfg = effective_ok(
      parse_ok({"-c", file.file.c_str(), "-b", "127.0.0.1:0", "-w", "5", "--app", "testbed", "--log-level", "trace"}));
  BOOST_TEST_REQUIRE(cfg.bind.size() == 1u);  // -b replaces the file's list
  BOOST_TEST(to_string(cfg.bind[0]) == "127.0.0.1:0");
  BOOST_TEST(!cfg.workers_auto);
  BOOST_TEST(cfg.workers == 5);
  BOOST_TEST(cfg.app == "testbed");
  BOOST_TEST((cfg.log.level == prefork::log_level::trace));
  BOOST_TEST((cfg.log.format == prefork::log_format::json));  // untouched keys stay
  BOOST_TEST(cfg.backlog == 7);
  BOOST_TEST(cfg.exec.empty());

  const auto exec = effective_ok(parse_ok({"-c", file.file.c_str(), "--exec", "python3 -m prefork_wsgi app:app"}));
  BOOST_TEST(exec.exec == (std::vector<std::string>{"python3", "-m", "prefork_wsgi", "app:app"}),
             boost::test_tools::per_element());

  const auto automatic = effective_ok(parse_ok({"-c", file.file.c_str(), "-w", "auto"}));
  BOOST_TEST(automatic.workers_auto);
  BOOST_TEST(automatic.workers == prefork::auto_worker_count());
}

BOOST_AUTO_TEST_CASE(control_option_overrides_the_file) {
  BOOST_TEST(effective_ok(parse_ok({})).control == "run/preforkd.ctl");
  BOOST_TEST(effective_ok(parse_ok({"--control", "/tmp/x.ctl"})).control == "/tmp/x.ctl");
  temp_config file(R"({"control": "file.ctl"})");
  BOOST_TEST(effective_ok(parse_ok({"-c", file.file.c_str()})).control == "file.ctl");
  BOOST_TEST(effective_ok(parse_ok({"-c", file.file.c_str(), "--control", "option.ctl"})).control == "option.ctl");
  BOOST_TEST(effective_error(parse_ok({"--control", ""})) == R"("--control": expected a non-empty string, got "")");
}

BOOST_AUTO_TEST_CASE(a_programs_rules_give_defaults_and_its_apps) {
  prefork::config_rules rules;
  rules.apps = {"kv", "admin"};
  rules.defaults.app = "kv";
  rules.defaults.control = "kv.ctl";
  const auto cfg = prefork::effective_config(parse_ok({}), rules);
  BOOST_TEST_REQUIRE(cfg.has_value(), cfg.error().message);
  BOOST_TEST(cfg->app == "kv");
  BOOST_TEST(cfg->control == "kv.ctl");
  const auto chosen = prefork::effective_config(parse_ok({"--app", "admin"}), rules);
  BOOST_TEST_REQUIRE(chosen.has_value(), chosen.error().message);
  BOOST_TEST(chosen->app == "admin");

  // An app the program did not register is an error naming the ones it did.
  const auto other = prefork::effective_config(parse_ok({"--app", "hello"}), rules);
  BOOST_TEST_REQUIRE(!other.has_value());
  BOOST_TEST(other.error().message == R"("--app": unknown app "hello" (this program serves: kv, admin))");
  temp_config file(R"({"app": "echo", "control": "file.ctl"})");
  const auto from_file = prefork::effective_config(parse_ok({"-c", file.file.c_str()}), rules);
  BOOST_TEST_REQUIRE(!from_file.has_value());
  BOOST_TEST(from_file.error().message ==
             "\"" + file.file.string() + R"(": "app": unknown app "echo" (this program serves: kv, admin))");
  // A bad file is an error even when an option replaces the bad value, as for every key.
  BOOST_TEST(!prefork::effective_config(parse_ok({"-c", file.file.c_str(), "--app", "kv"}), rules).has_value());
  // Without rules (preforkd's parser alone) any name passes; run() then checks it.
  BOOST_TEST(effective_ok(parse_ok({"--app", "anything"})).app == "anything");
}

BOOST_AUTO_TEST_CASE(an_apps_section_is_checked_once_with_the_file_and_options) {
  // An app whose section needs a key: each option is checked alone (a one-key document),
  // which must not make the section look missing.
  prefork::config_rules rules;
  rules.apps = {"kv"};
  rules.defaults.app = "kv";
  rules.sections = {{"kv", [](const boost::json::value& section) {
                       if (!section.is_object() || !section.as_object().contains("path"))
                         throw prefork::config_value_error("path", "is required");
                     }}};
  temp_config file(R"({"kv": {"path": "/var/lib/kv"}})");
  const auto cfg =
      prefork::effective_config(parse_ok({"-c", file.file.c_str(), "-w", "3", "--app", "kv", "--control", "x"}), rules);
  BOOST_TEST_REQUIRE(cfg.has_value(), cfg.error().message);
  BOOST_TEST(cfg->app_section("kv").at("path") == "/var/lib/kv");
  // Without a file the section is absent, and the app says so.
  const auto none = prefork::effective_config(parse_ok({"-w", "3"}), rules);
  BOOST_TEST_REQUIRE(!none.has_value());
  BOOST_TEST(none.error().message == R"("kv.path": is required)");
  temp_config empty("{}");
  const auto without = prefork::effective_config(parse_ok({"-c", empty.file.c_str()}), rules);
  BOOST_TEST_REQUIRE(!without.has_value());
  BOOST_TEST(without.error().message == "\"" + empty.file.string() + R"(": "kv.path": is required)");
}

BOOST_AUTO_TEST_CASE(bad_values_name_the_option) {
  BOOST_TEST(effective_error(parse_ok({"-w", "lots"})) ==
             R"("--workers": expected an integer >= 1 or "auto", got "lots")");
  BOOST_TEST(effective_error(parse_ok({"-w", "0"})) == R"("--workers": expected an integer >= 1 or "auto", got 0)");
  BOOST_TEST(effective_error(parse_ok({"-w", "-2"})) == R"("--workers": expected an integer >= 1 or "auto", got -2)");
  BOOST_TEST(effective_error(parse_ok({"-w", ""})) == R"("--workers": expected an integer >= 1 or "auto", got "")");
  BOOST_TEST(effective_error(parse_ok({"-w", "2000"})) == R"("--workers": must be at most 1024, got 2000)");
  BOOST_TEST(effective_error(parse_ok({"--log-level", "loud"})) ==
             R"("--log-level": expected one of trace, debug, info, warning, error, fatal, )"
             R"(got "loud")");
  BOOST_TEST(effective_error(parse_ok({"--app", ""})) == R"("--app": expected a non-empty string, got "")");
  BOOST_TEST(effective_error(parse_ok({"--exec", " "})) ==
             R"("--exec": expected a command (a non-empty array of non-empty strings, or a string), or null, got " ")");
  BOOST_TEST(effective_error(parse_ok({"-b", "unix:a", "-b", "127.0.0.1:99999"})) ==
             R"("--bind": "127.0.0.1:99999": port must be 0..65535)");
}

BOOST_AUTO_TEST_CASE(file_errors_come_first) {
  BOOST_TEST(effective_error(parse_ok({"-c", "/nonexistent/preforkd.json", "-w", "lots"})) ==
             R"(cannot read config file "/nonexistent/preforkd.json": No such file or directory)");
  temp_config file(R"({"wrokers": 2})");
  BOOST_TEST(effective_error(parse_ok({"-c", file.file.c_str(), "-w", "2"})) ==
             "\"" + file.file.string() + R"(": unknown key "wrokers")");
}

BOOST_AUTO_TEST_SUITE_END()
