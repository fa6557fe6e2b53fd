// What preforkctl's sources share: the commands it knows, the parsed command line, and
// the readers of the master's JSON answers. preforkctl.cpp runs a call; the command line,
// the help texts and the human output live in the preforkctl_*.cpp files beside it.
#pragma once

#include "prefork/error.hpp"

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>
#include <boost/system/result.hpp>

#include <cstdint>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

namespace prefork::detail::preforkctl {

enum class argument { none, count, worker_id };

struct command_spec {
  std::string_view name;       // on the command line
  std::string_view wire_name;  // `cmd` on the socket; empty for wait-ready
  argument positional;
  std::string_view synopsis;
  std::string_view summary;
  std::string_view details;  // extra lines of the command's help
};

/// The command called `name` (`kill_worker` is `kill-worker`), or null.
const command_spec* find_command(std::string_view name);

/// preforkctl --help: the options and every command.
std::string global_help();

/// COMMAND --help.
std::string command_help(const command_spec& spec);

struct invocation {
  std::optional<std::string> socket;
  std::optional<std::string> config_file;
  bool json_output = false;
  bool help = false;
  const command_spec* command = nullptr;
  std::vector<std::string> positionals;
  bool wait = false;
  bool fast = false;
  std::optional<std::string> signal;
  std::optional<std::string> timeout;
};

/// A decimal integer filling all of `text`.
std::optional<std::int64_t> parse_integer(std::string_view text);

/// A number of seconds in [0, 1e6].
std::optional<double> parse_seconds(const std::string& text);

/// The command line, checked: each option given once and only to a command that takes it,
/// the command's argument well-formed. Help wins over every other complaint.
result<invocation> parse_arguments(int argc, const char* const* argv);

/// A scalar as people read it: strings without quotes, null as "-".
std::string text_of(const boost::json::value& value);

/// text_of the member `key` of `object`; "-" when it is missing.
std::string text_of(const boost::json::object& object, std::string_view key);

/// The member `key` of `object` if it is a number.
std::optional<double> number_of(const boost::json::object& object, std::string_view key);

/// `value` formatted by snprintf with `format`.
std::string printf_text(const char* format, double value);

/// A call's result as people read it (a table for workers, key: value lines for status...).
void print_human(std::ostream& out, const invocation& call, const boost::json::value& result);

}  // namespace prefork::detail::preforkctl
