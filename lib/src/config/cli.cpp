#include "prefork/cli.hpp"

#include "config/parse_options.hpp"
#include <boost/json.hpp>

#include <boost/program_options.hpp>

#include <sstream>

namespace prefork {
namespace json = boost::json;
namespace po = boost::program_options;
namespace {

// "kv (the default), echo": the apps a program serves, for --help.
std::string app_list(const std::vector<std::string>& apps) {
  if (apps.empty()) return "hello (the default), testbed, echo";
  std::string text = apps.front() + " (the default)";
  for (auto app = apps.begin() + 1; app != apps.end(); ++app) text += ", " + *app;
  return text;
}

po::options_description option_descriptions(const help_details& details = {}) {
  std::string bind_defaults;
  for (const auto& where : details.defaults.bind)
    bind_defaults += (bind_defaults.empty() ? "" : " ") + to_string(where);
  po::options_description options("Options");
  auto add = options.add_options();
  add("config,c", po::value<std::string>()->value_name("FILE"), "configuration file (JSON)");
  add("bind,b", po::value<std::vector<std::string>>()->value_name("BIND"),
      ("listen on BIND: unix:PATH, HOST:PORT, [V6]:PORT or fd://N; repeatable, replaces the file's bind list "
       "(default: " +
       bind_defaults + ")")
          .c_str());
  add("workers,w", po::value<std::string>()->value_name("N|auto"), "number of workers; auto is 2 x CPUs + 1");
  add("app", po::value<std::string>()->value_name("NAME"), ("application to serve: " + app_list(details.apps)).c_str());
  add("exec", po::value<std::string>()->value_name("COMMAND"),
      "workers exec COMMAND (split at whitespace) and speak the channel protocol (lib/PROTOCOL.md) instead of "
      "serving an app");
  add("control", po::value<std::string>()->value_name("PATH"),
      ("control socket for preforkctl -s PATH; overrides the file's control (default: " + details.defaults.control +
       ")")
          .c_str());
  add("log-level", po::value<std::string>()->value_name("LEVEL"), "trace, debug, info, warning, error or fatal");
  add("check-config", "validate the configuration, print it as JSON and exit");
  add("version", "print the version and exit");
  add("help,h", "print this help and exit");
  return options;
}

// Checks one command-line value with the config file's rule for `key_path` by parsing a
// document holding just that key, so both spell their errors alike; the error names
// `option` instead of the key.
prefork::result<config> check_with_file_rules(const json::object& document, std::string_view key_path,
                                              std::string_view option, const config_rules& rules) {
  auto parsed = parse_config(json::serialize(document), rules);
  if (parsed) return parsed;
  auto message = std::move(parsed.error().message);
  const auto key = "\"" + std::string(key_path) + "\"";
  if (message.starts_with(key)) message.replace(0, key.size(), "\"" + std::string(option) + "\"");
  return failure{errc::config_invalid, std::move(message)};
}

// "4" and "-1" become JSON numbers so that the file's integer rule judges them.
json::value workers_value(const std::string& text) {
  boost::system::error_code ec;
  auto number = json::parse(text, ec);
  if (!ec && number.is_number()) return number;
  return json::string(text);
}

}  // namespace

prefork::result<command_line> parse_command_line(int argc, const char* const* argv) {
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
  if (values.count("control") != 0) command.control = values["control"].as<std::string>();
  if (values.count("log-level") != 0) command.log_level = values["log-level"].as<std::string>();
  command.check_config = values.count("check-config") != 0;
  command.show_version = values.count("version") != 0;
  command.show_help = values.count("help") != 0;
  return command;
}

std::string usage_text(std::string_view program_name, const help_details& details) {
  const std::string indent(program_name.size() + 8, ' ');
  std::ostringstream text;
  text << "Usage: " << program_name << " [-c FILE] [-b BIND]... [-w N|auto] [--app NAME | --exec COMMAND]\n"
       << indent << "[--control PATH] [--log-level LEVEL] [--check-config] [--version] [--help]\n\n";
  if (details.description.empty()) {
    text << "A pre-forking connection supervisor: the master accepts connections and hands\n"
         << "each one to a forked worker. Command-line values override the file's.\n\n";
  } else {
    text << details.description << "\n"
         << "Runs on prefork: the master accepts connections and hands each one to a forked\n"
         << "worker. Command-line values override the file's.\n\n";
  }
  text << option_descriptions(details) << "\nExit status: 0 stopped cleanly, 1 fatal runtime error, 2 usage or "
       << "configuration\nerror, 3 cannot bind or listen.\n";
  return text.str();
}

prefork::result<config> effective_config(const command_line& command) {
  return effective_config(command, config_rules{});
}

prefork::result<config> effective_config(const command_line& command, const config_rules& rules) {
  // No file reads as an empty one, so that the apps' sections are checked either way.
  auto loaded = command.config_file ? load_config_file(*command.config_file, rules) : parse_config("{}", rules);
  if (!loaded) return loaded;
  config cfg = std::move(*loaded);

  // Each option is checked as a one-key file, without the apps' section checks (a section
  // that one-key document lacks is not missing from the real file).
  config_rules option_rules = rules;
  for (auto& section : option_rules.sections) section.check = nullptr;

  if (!command.binds.empty()) {
    std::vector<bind_address> binds;
    for (const auto& text : command.binds) {
      auto address = parse_bind_address(text);
      if (!address) return failure{errc::config_invalid, "\"--bind\": " + address.error().message};
      binds.push_back(std::move(*address));
    }
    cfg.bind = std::move(binds);
  }
  if (command.workers) {
    auto checked =
        check_with_file_rules({{"workers", workers_value(*command.workers)}}, "workers", "--workers", option_rules);
    if (!checked) return checked.error();
    cfg.workers_auto = checked->workers_auto;
    cfg.workers = checked->workers;
  }
  if (command.app) {
    auto checked = check_with_file_rules({{"app", *command.app}}, "app", "--app", option_rules);
    if (!checked) return checked.error();
    cfg.app = checked->app;
  }
  if (command.exec) {
    auto checked = check_with_file_rules({{"exec", *command.exec}}, "exec", "--exec", option_rules);
    if (!checked) return checked.error();
    cfg.exec = checked->exec;
  }
  if (command.control) {
    auto checked = check_with_file_rules({{"control", *command.control}}, "control", "--control", option_rules);
    if (!checked) return checked.error();
    cfg.control = checked->control;
  }
  if (command.log_level) {
    auto checked =
        check_with_file_rules({{"log", {{"level", *command.log_level}}}}, "log.level", "--log-level", option_rules);
    if (!checked) return checked.error();
    cfg.log.level = checked->log.level;
  }
  return cfg;
}

}  // namespace prefork
