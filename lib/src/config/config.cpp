// The configuration's defaults, the file loader and the configuration as JSON (preforkctl
// config, --check-config). Reading a document is parse_config.cpp; apps' sections are
// read by section_reader.cpp.
#include "prefork/config.hpp"

#include "config/config_reader.hpp"

#include <boost/json.hpp>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <thread>

namespace prefork {
namespace json = boost::json;
namespace {

using detail::dispatch_names;
using detail::log_format_names;
using detail::log_level_names;
using detail::max_workers;
using detail::name_table;
using detail::quote_json;

template <class Enum>
std::string_view name_of(name_table<Enum> names, Enum value) {
  for (const auto& [name, candidate] : names) {
    if (candidate == value) return name;
  }
  return "?";
}

json::value seconds_json(std::chrono::milliseconds duration) {
  if (duration.count() % 1000 == 0) return duration.count() / 1000;
  return static_cast<double>(duration.count()) / 1000.0;
}

}  // namespace

int auto_worker_count() {
  const unsigned cpus = std::thread::hardware_concurrency();
  return cpus == 0 ? 3 : static_cast<int>(std::min<unsigned>(2 * cpus + 1, max_workers));
}

config default_config() {
  config cfg;
  bind_address socket;
  socket.path = "run/preforkd.sock";
  cfg.bind = {socket};
  cfg.workers = auto_worker_count();
  return cfg;
}

prefork::result<config> load_config_file(const std::filesystem::path& file) {
  return load_config_file(file, config_rules{});
}

prefork::result<config> load_config_file(const std::filesystem::path& file, const config_rules& rules) {
  const auto cannot_read = [&file] {
    return failure{errc::config_invalid,
                   "cannot read config file " + quote_json(file.string()) + ": " + std::strerror(errno)};
  };
  const std::unique_ptr<std::FILE, int (*)(std::FILE*)> stream(std::fopen(file.c_str(), "rb"), &std::fclose);
  if (!stream) return cannot_read();
  std::string text;
  std::array<char, 8192> buffer{};
  while (const auto count = std::fread(buffer.data(), 1, buffer.size(), stream.get())) {
    text.append(buffer.data(), count);
  }
  if (std::ferror(stream.get())) return cannot_read();  // EISDIR for a directory, EIO, ...
  auto parsed = parse_config(text, rules);
  if (!parsed) return failure{errc::config_invalid, quote_json(file.string()) + ": " + parsed.error().message};
  return parsed;
}

json::value to_json(const config& cfg) {
  json::array bind;
  for (const auto& address : cfg.bind) bind.emplace_back(to_string(address));
  const auto optional_string = [](const auto& value) -> json::value {
    if (value) return json::string(*value);
    return nullptr;
  };
  json::object printed{
      {"bind", std::move(bind)},
      {"workers", cfg.workers},
      {"worker_connections", cfg.worker_connections},
      {"backlog", cfg.backlog},
      {"timeout", seconds_json(cfg.timeout)},
      {"graceful_timeout", seconds_json(cfg.graceful_timeout)},
      {"max_requests", cfg.max_requests},
      {"max_requests_jitter", cfg.max_requests_jitter},
      {"keepalive", seconds_json(cfg.keepalive)},
      {"dispatch", name_of<dispatch_kind>(dispatch_names, cfg.dispatch)},
      {"restart",
       {{"min_uptime_ms", cfg.restart.min_uptime.count()},
        {"backoff_initial_ms", cfg.restart.backoff_initial.count()},
        {"backoff_max_ms", cfg.restart.backoff_max.count()}}},
      {"control", cfg.control},
      {"socket_mode", cfg.socket_mode},
      {"pid_file", optional_string(cfg.pid_file)},
      {"log",
       {{"level", name_of<log_level>(log_level_names, cfg.log.level)},
        {"file", cfg.log.file},
        {"format", name_of<log_format>(log_format_names, cfg.log.format)}}},
      {"app", cfg.app},
      {"exec", cfg.exec.empty() ? json::value(nullptr) : json::value(json::array(cfg.exec.begin(), cfg.exec.end()))},
      {"http",
       {{"max_header_bytes", cfg.http.max_header_bytes},
        {"max_body_bytes", cfg.http.max_body_bytes},
        {"request_timeout", seconds_json(cfg.http.request_timeout)}}},
      {"metrics", cfg.metrics ? json::value(to_string(*cfg.metrics)) : json::value(nullptr)},
  };
  for (const auto& [key, section] : cfg.app_sections) printed[key] = section;
  return printed;
}

const json::value& config::app_section(std::string_view key) const noexcept {
  static const json::value none;
  const auto* found = app_sections.if_contains(key);
  return found != nullptr ? *found : none;
}

}  // namespace prefork
