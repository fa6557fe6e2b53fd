// parse_config: preforkd's configuration document read key by key into a config, with
// the apps' sections kept and checked. Errors name the key (STYLE 10).
#include "config/config_reader.hpp"
#include "prefork/config.hpp"

#include <boost/json.hpp>

#include <algorithm>
#include <charconv>
#include <cstddef>
#include <exception>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace prefork {
namespace {

using detail::config_problem;
using detail::describe;
using detail::dispatch_names;
using detail::log_format_names;
using detail::log_level_names;
using detail::max_milliseconds;
using detail::max_workers;
using detail::object_reader;
using detail::quote_json;
namespace json = boost::json;

void read_bind(object_reader& reader, std::vector<bind_address>& out) {
  const auto* value = reader.find("bind");
  if (value == nullptr) return;
  if (value->is_string()) {
    bind_address address;
    reader.address("bind", *value, address);
    out = {address};
    return;
  }
  if (!value->is_array() || value->get_array().empty()) {
    return reader.expected("bind", "a bind address string or a non-empty array of them", *value);
  }
  std::vector<bind_address> addresses(value->get_array().size());
  for (std::size_t i = 0; i < addresses.size(); ++i) {
    reader.address("bind[" + std::to_string(i) + "]", value->get_array()[i], addresses[i]);
  }
  out = std::move(addresses);
}

// A command as an array of arguments, or as one string split at whitespace (no shell:
// no quoting, no expansion); null clears it.
void read_exec(object_reader& reader, std::vector<std::string>& out) {
  const auto* value = reader.find("exec");
  if (value == nullptr) return;
  constexpr std::string_view what = "a command (a non-empty array of non-empty strings, or a string), or null";
  std::vector<std::string> command;
  if (value->is_null()) {
    out.clear();
    return;
  }
  if (value->is_string()) {
    std::istringstream words{std::string(value->get_string())};
    for (std::string word; words >> word;) command.push_back(std::move(word));
  } else if (value->is_array()) {
    const auto& arguments = value->get_array();
    for (std::size_t i = 0; i < arguments.size(); ++i) {
      if (!arguments[i].is_string() || arguments[i].get_string().empty())
        return reader.expected("exec[" + std::to_string(i) + "]", "a non-empty string", arguments[i]);
      command.emplace_back(arguments[i].get_string());
    }
  }
  if (command.empty()) return reader.expected("exec", what, *value);
  out = std::move(command);
}

void read_workers(object_reader& reader, config& cfg) {
  const auto* value = reader.find("workers");
  if (value == nullptr) return;
  if (value->is_string() && value->get_string() == "auto") {
    cfg.workers_auto = true;
    cfg.workers = auto_worker_count();
    return;
  }
  int count = 0;
  reader.integer_value_of("workers", *value, 1, count, max_workers, " or \"auto\"");
  if (reader.failed()) return;
  cfg.workers_auto = false;
  cfg.workers = count;
}

void read_socket_mode(object_reader& reader, config& cfg) {
  const auto* value = reader.find("socket_mode");
  if (value == nullptr) return;
  const auto expectation = "a string of octal digits such as \"0660\"";
  if (!value->is_string()) return reader.expected("socket_mode", expectation, *value);
  const auto& text = value->get_string();
  unsigned bits = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), bits, 8);
  const bool octal_digits_only = !text.empty() && text.front() >= '0' && text.front() <= '7' &&
                                 ec != std::errc::invalid_argument && end == text.data() + text.size();
  if (!octal_digits_only) {
    return reader.expected("socket_mode", expectation, *value);
  }
  if (ec == std::errc::result_out_of_range || bits > 0777) {
    return reader.fail("socket_mode", "must be at most \"0777\", got " + describe(*value));
  }
  cfg.socket_mode = text;
  cfg.socket_mode_bits = bits;
}

void read_restart(object_reader& parent, restart_config& out) {
  auto reader = parent.object("restart");
  auto min_uptime = out.min_uptime.count();
  auto backoff_initial = out.backoff_initial.count();
  auto backoff_max = out.backoff_max.count();
  using rep = std::chrono::milliseconds::rep;
  reader.integer("min_uptime_ms", rep{0}, min_uptime, rep{max_milliseconds});
  reader.integer("backoff_initial_ms", rep{1}, backoff_initial, rep{max_milliseconds});
  reader.integer("backoff_max_ms", rep{0}, backoff_max, rep{max_milliseconds});
  if (!reader.failed() && backoff_max < backoff_initial) {
    reader.fail("backoff_max_ms", "must be >= restart.backoff_initial_ms (" + std::to_string(backoff_initial) +
                                      "), got " + std::to_string(backoff_max));
  }
  reader.reject_unknown_keys();
  out = {std::chrono::milliseconds{min_uptime}, std::chrono::milliseconds{backoff_initial},
         std::chrono::milliseconds{backoff_max}};
}

void read_log(object_reader& parent, log_config& out) {
  auto reader = parent.object("log");
  reader.choice<log_level>("level", log_level_names, out.level);
  reader.text("file", out.file);
  reader.choice<log_format>("format", log_format_names, out.format);
  reader.reject_unknown_keys();
}

void read_http(object_reader& parent, http_config& out) {
  auto reader = parent.object("http");
  reader.integer("max_header_bytes", std::size_t{256}, out.max_header_bytes);
  reader.integer("max_body_bytes", std::size_t{0}, out.max_body_bytes);
  reader.seconds("request_timeout", object_reader::zero::rejected, out.request_timeout);
  reader.reject_unknown_keys();
}

void read_metrics(object_reader& reader, std::optional<bind_address>& out) {
  const auto* value = reader.find("metrics");
  if (value == nullptr) return;
  if (value->is_null()) return out.reset();
  bind_address address;
  reader.address("metrics", *value, address);
  out = std::move(address);
}

// `app` names one of the program's apps (any name when it registered none).
void read_app(object_reader& reader, const std::vector<std::string>& apps, std::string& out) {
  const auto* value = reader.find("app");
  if (value == nullptr) return;
  std::string name;
  reader.text("app", name);
  if (reader.failed()) return;
  if (!apps.empty() && std::find(apps.begin(), apps.end(), name) == apps.end()) {
    std::string available;
    for (const auto& app : apps) available += (available.empty() ? "" : ", ") + app;
    return reader.fail("app", "unknown app " + quote_json(name) + " (this program serves: " + available + ")");
  }
  out = std::move(name);
}

// Keeps the top-level keys that are apps' sections (a file's section replaces a default's
// whole); they then count as known keys.
void read_app_sections(object_reader& reader, const json::object& document, const config_rules& rules,
                       json::object& out) {
  for (const auto& rule : rules.sections) {
    if (rule.key.empty()) continue;
    if (const auto* value = reader.find(rule.key)) out[rule.key] = *value;
  }
  if (rules.unknown != config_rules::unknown_keys::keep_as_section) return;
  for (const auto& entry : document) {
    if (entry.value().is_object() && !reader.known(entry.key()) && !reader.failed()) {
      out[entry.key()] = entry.value();
      (void)reader.find(entry.key());
    }
  }
}

// Runs each app's check on its section (null when absent); the first failure is the error,
// naming the section's key and the path inside it.
void check_app_sections(const config_rules& rules, const config& cfg, std::optional<config_problem>& error) {
  for (const auto& rule : rules.sections) {
    if (!rule.check || rule.key.empty()) continue;
    try {
      rule.check(cfg.app_section(rule.key));
    } catch (const config_value_error& e) {
      error = config_problem{e.key().empty() ? rule.key : rule.key + "." + e.key(), e.why(), e.problem()};
    } catch (const std::exception& e) {
      error = config_problem{rule.key, e.what()};
    }
    if (error) return;
  }
}

failure invalid_json(std::string_view text, std::size_t offset, const boost::system::error_code& ec) {
  offset = std::min(offset, text.size());
  const auto before = text.substr(0, offset);
  const auto line = 1 + std::count(before.begin(), before.end(), '\n');
  const auto line_start = before.rfind('\n');
  const auto column = offset - (line_start == std::string_view::npos ? 0 : line_start + 1) + 1;
  return {errc::config_invalid,
          "invalid JSON at line " + std::to_string(line) + " column " + std::to_string(column) + ": " + ec.message()};
}

}  // namespace

prefork::result<config> parse_config(std::string_view json_text) { return parse_config(json_text, config_rules{}); }

prefork::result<config> parse_config(std::string_view json_text, const config_rules& rules) {
  json::stream_parser parser;
  boost::system::error_code ec;
  const auto consumed = parser.write(json_text.data(), json_text.size(), ec);
  if (ec) return invalid_json(json_text, consumed, ec);
  parser.finish(ec);
  if (ec) return invalid_json(json_text, json_text.size(), ec);
  const auto document = parser.release();
  if (!document.is_object()) {
    return failure{errc::config_invalid, "expected a JSON object at the top level, got " + describe(document)};
  }

  config cfg = rules.defaults;
  std::optional<config_problem> error;
  object_reader reader(document.get_object(), "", error);
  read_bind(reader, cfg.bind);
  read_workers(reader, cfg);
  reader.integer("worker_connections", 1, cfg.worker_connections);
  reader.integer("backlog", 1, cfg.backlog);
  reader.seconds("timeout", object_reader::zero::rejected, cfg.timeout);
  reader.seconds("graceful_timeout", object_reader::zero::allowed, cfg.graceful_timeout);
  reader.integer("max_requests", 0L, cfg.max_requests);
  reader.integer("max_requests_jitter", 0L, cfg.max_requests_jitter);
  reader.seconds("keepalive", object_reader::zero::allowed, cfg.keepalive);
  reader.choice<dispatch_kind>("dispatch", dispatch_names, cfg.dispatch);
  read_restart(reader, cfg.restart);
  reader.text("control", cfg.control);
  read_socket_mode(reader, cfg);
  reader.optional_text("pid_file", cfg.pid_file);
  read_log(reader, cfg.log);
  read_app(reader, rules.apps, cfg.app);
  read_exec(reader, cfg.exec);
  read_http(reader, cfg.http);
  read_metrics(reader, cfg.metrics);
  read_app_sections(reader, document.get_object(), rules, cfg.app_sections);
  reader.reject_unknown_keys();
  if (!error) check_app_sections(rules, cfg, error);
  if (error) return error->to_error();
  return cfg;
}

}  // namespace prefork
