// preforkctl's command line: global options, the command and its argument and options,
// each checked (given once, only to the command that takes it, well-formed).
#include "control/preforkctl_internal.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>

namespace prefork::detail::preforkctl {
namespace {

// Reads the value of an option given as `--name VALUE`, `--name=VALUE` or `-xVALUE`.
// `index` is moved past what was consumed.
std::optional<std::string> option_value(std::string_view arg, std::string_view long_name, std::string_view short_name,
                                        int argc, const char* const* argv, int& index, bool& matched,
                                        std::optional<failure>& error) {
  matched = false;
  std::optional<std::string> value;
  if (arg == long_name || (!short_name.empty() && arg == short_name)) {
    matched = true;
    if (index + 1 >= argc) {
      error = failure{errc::usage, std::string(arg) + ": missing value"};
      return std::nullopt;
    }
    value = argv[++index];
  } else if (arg.starts_with(std::string(long_name) + "=")) {
    matched = true;
    value = std::string(arg.substr(long_name.size() + 1));
  } else if (!short_name.empty() && arg.starts_with(short_name) && arg.size() > short_name.size()) {
    matched = true;
    value = std::string(arg.substr(short_name.size()));
  }
  return value;
}

}  // namespace

std::optional<std::int64_t> parse_integer(std::string_view text) {
  std::int64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || text.empty()) return std::nullopt;
  return value;
}

std::optional<double> parse_seconds(const std::string& text) {
  if (text.empty()) return std::nullopt;
  char* end = nullptr;
  double value = std::strtod(text.c_str(), &end);
  if (end != text.c_str() + text.size() || !std::isfinite(value) || value < 0 || value > 1e6) return std::nullopt;
  return value;
}

result<invocation> parse_arguments(int argc, const char* const* argv) {
  invocation parsed;
  std::optional<failure> error;
  auto set_once = [&](std::optional<std::string>& slot, std::string_view name, std::string value) {
    if (slot && !error) error = failure{errc::usage, std::string(name) + " given twice"};
    slot = std::move(value);
  };
  auto flag_once = [&](bool& slot, std::string_view name) {
    if (slot && !error) error = failure{errc::usage, std::string(name) + " given twice"};
    slot = true;
  };
  bool only_positionals = false;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i] ? argv[i] : "";
    if (only_positionals || arg.size() < 2 || arg[0] != '-') {
      if (parsed.command == nullptr && parsed.positionals.empty()) {
        parsed.command = find_command(arg);
        if (parsed.command == nullptr && !error)
          error = failure{errc::usage, "unknown command \"" + std::string(arg) + "\""};
        if (parsed.command == nullptr) parsed.positionals.push_back(std::string(arg));  // remember one was given
      } else {
        parsed.positionals.push_back(std::string(arg));
      }
      continue;
    }
    if (arg == "--") {
      only_positionals = true;
      continue;
    }
    bool matched = false;
    if (auto value = option_value(arg, "--socket", "-s", argc, argv, i, matched, error); matched) {
      if (value) set_once(parsed.socket, "--socket", *value);
      continue;
    }
    if (auto value = option_value(arg, "--config", "-c", argc, argv, i, matched, error); matched) {
      if (value) set_once(parsed.config_file, "--config", *value);
      continue;
    }
    if (auto value = option_value(arg, "--signal", "", argc, argv, i, matched, error); matched) {
      if (value) set_once(parsed.signal, "--signal", *value);
      continue;
    }
    if (auto value = option_value(arg, "--timeout", "", argc, argv, i, matched, error); matched) {
      if (value) set_once(parsed.timeout, "--timeout", *value);
      continue;
    }
    if (arg == "--json") {
      flag_once(parsed.json_output, "--json");
    } else if (arg == "-h" || arg == "--help") {
      parsed.help = true;
    } else if (arg == "--wait") {
      flag_once(parsed.wait, "--wait");
    } else if (arg == "--fast") {
      flag_once(parsed.fast, "--fast");
    } else if (!error) {
      error = failure{errc::usage, "unknown option " + std::string(arg)};
    }
  }
  if (parsed.help) return parsed;  // help wins over every other complaint
  if (error) return *error;
  if (parsed.command == nullptr) return failure{errc::usage, "no command given"};
  if (parsed.socket && parsed.config_file) return failure{errc::usage, "-s and -c cannot be used together"};

  const command_spec& spec = *parsed.command;
  auto only_for = [&](bool given, std::string_view option, std::string_view command) -> std::optional<failure> {
    if (given && spec.name != command)
      return failure{errc::usage, std::string(option) + " is not an option of " + std::string(spec.name)};
    return std::nullopt;
  };
  if (auto e = only_for(parsed.wait, "--wait", "reload")) return *e;
  if (auto e = only_for(parsed.fast, "--fast", "stop")) return *e;
  if (auto e = only_for(parsed.signal.has_value(), "--signal", "kill-worker")) return *e;
  if (auto e = only_for(parsed.timeout.has_value(), "--timeout", "wait-ready")) return *e;

  if (spec.name == "help") {
    if (parsed.positionals.size() > 1) return failure{errc::usage, "help: too many arguments"};
    if (parsed.positionals.size() == 1) {
      parsed.command = find_command(parsed.positionals[0]);
      if (parsed.command == nullptr) return failure{errc::usage, "unknown command \"" + parsed.positionals[0] + "\""};
    } else {
      parsed.command = nullptr;
    }
    parsed.help = true;
    return parsed;
  }
  const std::size_t expected = spec.positional == argument::none ? 0 : 1;
  if (parsed.positionals.size() < expected)
    return failure{errc::usage,
                   std::string(spec.name) + ": missing " + (spec.positional == argument::count ? "N" : "ID")};
  if (parsed.positionals.size() > expected)
    return failure{errc::usage,
                   std::string(spec.name) + ": unexpected argument \"" + parsed.positionals[expected] + "\""};
  if (spec.positional == argument::count) {
    auto count = parse_integer(parsed.positionals[0]);
    if (!count || *count < 1)
      return failure{errc::usage, "scale: N must be an integer >= 1, got \"" + parsed.positionals[0] + "\""};
  }
  if (spec.positional == argument::worker_id && !parse_integer(parsed.positionals[0]))
    return failure{errc::usage,
                   std::string(spec.name) + ": ID must be an integer, got \"" + parsed.positionals[0] + "\""};
  if (parsed.signal) {
    std::string name = *parsed.signal;
    std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return std::toupper(c); });
    if (name.starts_with("SIG")) name.erase(0, 3);
    if (name != "TERM" && name != "KILL")
      return failure{errc::usage, "--signal must be KILL or TERM, got \"" + *parsed.signal + "\""};
    parsed.signal = name;
  }
  if (parsed.timeout && !parse_seconds(*parsed.timeout))
    return failure{errc::usage, "--timeout must be a number of seconds >= 0, got \"" + *parsed.timeout + "\""};
  return parsed;
}

}  // namespace prefork::detail::preforkctl
