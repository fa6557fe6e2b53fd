// The example kv-server (apps/examples/kv-server), a program of its own on prefork::run:
// its own name, description, version and defaults in --help, --version and errors, only
// its own app, and its own config section ("kv"), checked like preforkd's keys at start, by
// --check-config and on reload.
#include "prefork/run.hpp"
#include "prefork/testing.hpp"
#include "support/programs.hpp"
#include "support/server_helpers.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/write.hpp>
#include <boost/json/parse.hpp>
#include <boost/test/unit_test.hpp>

#include <sys/socket.h>
#include <sys/time.h>

#include <array>
#include <chrono>
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

// kv-server under prefork::testing, one worker (the store is per worker), with `section` as
// its "kv" section.
prefork::testing::server_options kv_options(const json::object& section) {
  prefork::testing::server_options options;
  options.program = kv_server_path();
  options.config["workers"] = 1;
  options.config["kv"] = section;
  options.on_stop_failure = [](const std::string& message) { BOOST_ERROR(message); };
  return options;
}

// Sends `lines` on a new connection, then reads until kv-server closes it (each read
// waits at most 10 s).
std::string exchange(prefork::testing::server& server, const std::string& lines) {
  boost::asio::io_context io;
  auto socket = server.connect(io.get_executor());
  boost::asio::write(socket, boost::asio::buffer(lines));
  socket.shutdown(prefork::socket_type::shutdown_send);
  const timeval limit{10, 0};
  ::setsockopt(socket.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
  std::string reply;
  boost::system::error_code ec;
  std::array<char, 512> chunk;
  while (!ec) reply.append(chunk.data(), socket.read_some(boost::asio::buffer(chunk), ec));
  BOOST_TEST((ec == boost::asio::error::eof), "reading until kv-server closes: " << ec.message());
  return reply;
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

BOOST_AUTO_TEST_CASE(its_own_section_sets_its_limits) {
  prefork::testing::server server(kv_options({{"max_keys", 1}, {"line_timeout", 0.3}}));
  BOOST_TEST(server.control({{"cmd", "config"}}).at("kv") == json::parse(R"({"max_keys": 1, "line_timeout": 0.3})"));
  BOOST_TEST(exchange(server, "SET a 1\nSET b 2\nSET a 3\nGET a\n") ==
             "OK\nERROR store full (kv.max_keys)\nOK\nVALUE 3\n");

  // A client stalled mid-line is closed after kv.line_timeout (0.3 s), not http's 10 s.
  boost::asio::io_context io;
  auto socket = server.connect(io.get_executor());
  boost::asio::write(socket, boost::asio::buffer(std::string("GET a")));
  const auto started = std::chrono::steady_clock::now();
  const timeval limit{5, 0};
  ::setsockopt(socket.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
  std::array<char, 64> chunk;
  boost::system::error_code ec;
  socket.read_some(boost::asio::buffer(chunk), ec);
  const auto waited = std::chrono::steady_clock::now() - started;
  BOOST_TEST((ec == boost::asio::error::eof), ec.message());
  BOOST_TEST(waited >= 250ms);
  BOOST_TEST(waited < 3s, "closed after " << std::chrono::duration<double>(waited).count() << " s");
}

BOOST_AUTO_TEST_CASE(a_bad_value_in_its_section_is_exit_2_naming_the_key) {
  auto result = run_kv_server({"-c", "kv.json"}, R"({"kv": {"max_keys": "x"}})");
  BOOST_TEST(exits_with(result, 2), result.describe());
  BOOST_TEST(result.err == "kv-server: \"kv.json\": \"kv.max_keys\": expected an integer >= 1, got \"x\"\n");

  auto timeout = run_kv_server({"--check-config", "-c", "kv.json"}, R"({"kv": {"line_timeout": -1}})");
  BOOST_TEST(exits_with(timeout, 2), timeout.describe());
  BOOST_TEST(timeout.err == "kv-server: \"kv.json\": \"kv.line_timeout\": expected a number of seconds > 0, got -1\n");
  BOOST_TEST(timeout.out.empty());

  auto not_an_object = run_kv_server({"-c", "kv.json"}, R"({"kv": 100})");
  BOOST_TEST(exits_with(not_an_object, 2), not_an_object.describe());
  BOOST_TEST(not_an_object.err == "kv-server: \"kv.json\": \"kv\": expected an object, got 100\n");
}

BOOST_AUTO_TEST_CASE(an_unknown_key_in_its_section_is_exit_2) {
  auto result = run_kv_server({"-c", "kv.json"}, R"({"kv": {"max_keys": 5, "max_kyes": 6}})");
  BOOST_TEST(exits_with(result, 2), result.describe());
  BOOST_TEST(result.err == "kv-server: \"kv.json\": unknown key \"kv.max_kyes\"\n");
  // A section of an app it does not have is an unknown key as well.
  auto other = run_kv_server({"-c", "kv.json"}, R"({"http_api": {"port": 1}})");
  BOOST_TEST(exits_with(other, 2), other.describe());
  BOOST_TEST(other.err == "kv-server: \"kv.json\": unknown key \"http_api\"\n");
}

BOOST_AUTO_TEST_CASE(check_config_prints_its_section) {
  auto result = run_kv_server({"--check-config", "-c", "kv.json"}, R"({"kv": {"max_keys": 5}})");
  BOOST_TEST_REQUIRE(exits_with(result, 0), result.describe());
  BOOST_TEST(json::parse(result.out).at("kv") == json::parse(R"({"max_keys": 5})"));
  // preforkd has no such section: the same file is an error there.
  temp_directory dir;
  write_file(dir / "kv.json", R"({"kv": {"max_keys": 5}})");
  auto preforkd = run_preforkd({"--check-config", "-c", "kv.json"}, dir.path());
  BOOST_TEST(exits_with(preforkd, 2), preforkd.describe());
  BOOST_TEST(preforkd.err == "preforkd: \"kv.json\": unknown key \"kv\"\n");
}

BOOST_AUTO_TEST_CASE(a_bad_section_on_reload_keeps_the_running_configuration) {
  prefork::testing::server server(kv_options({{"max_keys", 1}}));
  rewrite_config(server, {{"kv", {{"max_keys", "lots"}}}});
  try {
    server.control({{"cmd", "reload"}, {"wait", true}});
    BOOST_ERROR("a reload with a bad kv section succeeded");
  } catch (const prefork::testing::control_error& e) {
    BOOST_TEST(e.code() == prefork::errc::reload_failed);
    BOOST_TEST(
        std::string(e.what()).find(R"("kv.max_keys": expected an integer >= 1, got "lots")") != std::string::npos,
        e.what());
  }
  BOOST_TEST(server.control({{"cmd", "config"}}).at("kv") == json::parse(R"({"max_keys": 1})"));
  BOOST_TEST(exchange(server, "SET a 1\nSET b 2\n") == "OK\nERROR store full (kv.max_keys)\n");

  // Fixed, the next reload's workers read the new section.
  rewrite_config(server, {{"kv", {{"max_keys", 2}}}});
  server.control({{"cmd", "reload"}, {"wait", true}});
  BOOST_TEST(exchange(server, "SET a 1\nSET b 2\nSET c 3\n") == "OK\nOK\nERROR store full (kv.max_keys)\n");
}

BOOST_AUTO_TEST_SUITE_END()
