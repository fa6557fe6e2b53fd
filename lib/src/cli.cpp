#include "prefork/cli.hpp"

#include "prefork/detail/parse_options.hpp"
#include <boost/json.hpp>

#include <boost/program_options.hpp>

#include <sstream>

namespace prefork {
namespace json = boost::json;
namespace po = boost::program_options;
namespace {

po::options_description option_descriptions() {
  po::options_description options("Options");
  options.add_options()("config,c", po::value<std::string>()->value_name("FILE"), "configuration file (JSON)")(
      "bind,b", po::value<std::vector<std::string>>()->value_name("BIND"),
      "listen on BIND: unix:PATH, HOST:PORT, [V6]:PORT or fd://N; repeatable, replaces the "
      "file's bind list")("workers,w", po::value<std::string>()->value_name("N|auto"),
                          "number of workers; auto is 2 x CPUs + 1")("app",
                                                                     po::value<std::string>()->value_name("NAME"),
                                                                     "application to serve (hello, testbed, "
                                                                     "echo, or one registered by the program)")(
      "exec", po::value<std::string>()->value_name("COMMAND"),
      "workers exec COMMAND (split at whitespace) and speak the channel protocol (lib/PROTOCOL.md) "
      "instead of serving an app")("log-level", po::value<std::string>()->value_name("LEVEL"),
                                   "trace, debug, info, warning, error or fatal")(
      "check-config", "validate the configuration, print it as JSON and exit")("version", "print the version and exit")(
      "help,h", "print this help and exit");
  return options;
}

// Checks one command-line value with the config file's rule for `key_path` by parsing a
// document holding just that key, so both spell their errors alike; the error names
// `option` instead of the key.
boost::system::result<config, config_error> check_with_file_rules(const json::object& document,
                                                                  std::string_view key_path, std::string_view option) {
  auto parsed = parse_config(json::serialize(document));
  if (parsed) return parsed;
  auto message = std::move(parsed.error().message);
  const auto key = "\"" + std::string(key_path) + "\"";
  if (message.starts_with(key)) message.replace(0, key.size(), "\"" + std::string(option) + "\"");
  return config_error{std::move(message)};
}

// "4" and "-1" become JSON numbers so that the file's integer rule judges them.
json::value workers_value(const std::string& text) {
  boost::system::error_code ec;
  auto number = json::parse(text, ec);
  if (!ec && number.is_number()) return number;
  return json::string(text);
}

}  // namespace

boost::system::result<command_line, config_error> parse_command_line(int argc, const char* const* argv) {
  if (argc < 1) return command_line{};              // no argv[0]: nothing to parse (execve with argc 0)
  const auto descriptions = option_descriptions();  // the parsed values point into it
  auto parsed = detail::parse_options(argc, argv, descriptions);
  if (!parsed) return parsed.error();
  const po::variables_map& values = *parsed;

  command_line command;
  if (values.count("config") != 0) command.config_file = values["config"].as<std::string>();
  if (values.count("bind") != 0) command.binds = values["bind"].as<std::vector<std::string>>();
  if (values.count("workers") != 0) command.workers = values["workers"].as<std::string>();
  if (values.count("app") != 0) command.app = values["app"].as<std::string>();
  if (values.count("exec") != 0) command.exec = values["exec"].as<std::string>();
  if (values.count("log-level") != 0) command.log_level = values["log-level"].as<std::string>();
  command.check_config = values.count("check-config") != 0;
  command.show_version = values.count("version") != 0;
  command.show_help = values.count("help") != 0;
  return command;
}

std::string usage_text(std::string_view program_name) {
  std::ostringstream text;
  text << "Usage: " << program_name << " [-c FILE] [-b BIND]... [-w N|auto] [--app NAME | --exec COMMAND]\n"
       << std::string(program_name.size() + 8, ' ') << "[--log-level LEVEL] [--check-config] [--version] [--help]\n"
       << "\nA pre-forking connection supervisor: the master accepts connections and hands\n"
       << "each one to a forked worker. Command-line values override the file's.\n\n"
       << option_descriptions() << "\nExit status: 0 stopped cleanly, 1 fatal runtime error, 2 usage or configuration\n"
       << "error, 3 cannot bind or listen.\n";
  return text.str();
}

boost::system::result<config, config_error> effective_config(const command_line& command) {
  auto loaded = command.config_file ? load_config_file(*command.config_file)
                                    : boost::system::result<config, config_error>(default_config());
  if (!loaded) return loaded;
  config cfg = std::move(*loaded);

  if (!command.binds.empty()) {
    std::vector<bind_address> binds;
    for (const auto& text : command.binds) {
      auto address = parse_bind_address(text);
      if (!address) return config_error{"\"--bind\": " + address.error().message};
      binds.push_back(std::move(*address));
    }
    cfg.bind = std::move(binds);
  }
  if (command.workers) {
    auto checked = check_with_file_rules({{"workers", workers_value(*command.workers)}}, "workers", "--workers");
    if (!checked) return checked.error();
    cfg.workers_auto = checked->workers_auto;
    cfg.workers = checked->workers;
  }
  if (command.app) {
    auto checked = check_with_file_rules({{"app", *command.app}}, "app", "--app");
    if (!checked) return checked.error();
    cfg.app = checked->app;
  }
  if (command.exec) {
    auto checked = check_with_file_rules({{"exec", *command.exec}}, "exec", "--exec");
    if (!checked) return checked.error();
    cfg.exec = checked->exec;
  }
  if (command.log_level) {
    auto checked = check_with_file_rules({{"log", {{"level", *command.log_level}}}}, "log.level", "--log-level");
    if (!checked) return checked.error();
    cfg.log.level = checked->log.level;
  }
  return cfg;
}

}  // namespace prefork
