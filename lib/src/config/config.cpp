#include "prefork/config.hpp"

#include <boost/json.hpp>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <memory>
#include <optional>
#include <span>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace prefork {
namespace json = boost::json;
namespace {

constexpr int max_workers = 1024;
// Durations beyond ~31 years are typos; the bound also keeps the millisecond count finite.
constexpr double max_seconds = 1e9;
// The same bound for durations given in milliseconds: a clock's now() plus one must not
// overflow its nanosecond count.
constexpr long max_milliseconds = 1'000'000'000'000;

template <class Enum>
using name_table = std::span<const std::pair<std::string_view, Enum>>;

constexpr std::array<std::pair<std::string_view, log_level>, 6> log_level_names{{
    {"trace", log_level::trace},
    {"debug", log_level::debug},
    {"info", log_level::info},
    {"warning", log_level::warning},
    {"error", log_level::error},
    {"fatal", log_level::fatal},
}};
constexpr std::array<std::pair<std::string_view, log_format>, 2> log_format_names{{
    {"text", log_format::text},
    {"json", log_format::json},
}};
constexpr std::array<std::pair<std::string_view, dispatch_kind>, 2> dispatch_names{{
    {"least-connections", dispatch_kind::least_connections},
    {"round-robin", dispatch_kind::round_robin},
}};

template <class Enum>
std::string_view name_of(name_table<Enum> names, Enum value) {
  for (const auto& [name, candidate] : names) {
    if (candidate == value) return name;
  }
  return "?";
}

std::string quote_json(std::string_view text) { return json::serialize(json::string_view(text)); }

std::string format_double(double value) {
  std::array<char, 32> buffer{};
  const auto result = std::to_chars(buffer.data(), buffer.data() + buffer.size(), value);
  return std::string(buffer.data(), result.ptr);
}

// How a value appears after "got" in a message: JSON for scalars, a word for containers.
std::string describe(const json::value& value) {
  constexpr std::size_t max_shown = 60;
  switch (value.kind()) {
    case json::kind::double_: return format_double(value.get_double());
    case json::kind::array: return value.get_array().empty() ? "an empty array" : "an array";
    case json::kind::object: return "an object";
    case json::kind::string: {
      auto text = json::serialize(value);
      if (text.size() > max_shown) text = text.substr(0, max_shown) + "...\"";
      return text;
    }
    default: return json::serialize(value);
  }
}

// The value as an integer if it is one (integral doubles such as 4.0 count).
std::optional<long double> integer_value(const json::value& value) {
  if (value.is_int64()) return static_cast<long double>(value.get_int64());
  if (value.is_uint64()) return static_cast<long double>(value.get_uint64());
  if (value.is_double() && std::trunc(value.get_double()) == value.get_double()) {
    return static_cast<long double>(value.get_double());
  }
  return std::nullopt;
}

const json::object& empty_object() {
  static const json::object empty;
  return empty;
}

// The first problem found in a document: the whole key path and what is wrong with it.
struct config_problem {
  std::string key;  // "restart.min_uptime_ms"
  std::string why;  // "expected an integer >= 0, got -1"; unused for an unknown key
  config_value_error::kind kind = config_value_error::kind::bad_value;

  config_error to_error() const {
    if (kind == config_value_error::kind::unknown_key) return {"unknown key " + quote_json(key)};
    return {quote_json(key) + ": " + why};
  }
};

// Reads the keys of one JSON object into a config. The first error wins and later reads do
// nothing; every key looked up is recorded so that the rest can be reported as unknown.
class object_reader {
 public:
  object_reader(const json::object& object, std::string prefix, std::optional<config_problem>& error)
      : object_(&object), prefix_(std::move(prefix)), error_(&error) {}

  bool failed() const { return error_->has_value(); }

  // The value of `key` if it is present and no error happened yet.
  const json::value* find(std::string_view key) {
    known_.push_back(key);
    return failed() ? nullptr : object_->if_contains(key);
  }

  void fail(std::string_view key, std::string_view why) {
    if (failed()) return;
    *error_ = config_problem{prefix_ + std::string(key), std::string(why)};
  }
  void expected(std::string_view key, std::string_view what, const json::value& got) {
    fail(key, "expected " + std::string(what) + ", got " + describe(got));
  }

  // A nested object such as "restart"; absent reads as empty.
  object_reader object(std::string_view key) {
    const auto* value = find(key);
    if (value != nullptr && !value->is_object()) expected(key, "an object", *value);
    const bool usable = value != nullptr && value->is_object();
    return {usable ? value->get_object() : empty_object(), prefix_ + std::string(key) + ".", *error_};
  }

  template <class Int>
  void integer(std::string_view key, Int min, Int& out, Int max = std::numeric_limits<Int>::max(),
               std::string_view alternative = "") {
    const auto* value = find(key);
    if (value != nullptr) integer_value_of(key, *value, min, out, max, alternative);
  }

  template <class Int>
  void integer_value_of(std::string_view key, const json::value& value, Int min, Int& out, Int max,
                        std::string_view alternative = "") {
    const auto number = integer_value(value);
    if (!number || *number < min) {
      expected(key, "an integer >= " + std::to_string(min) + std::string(alternative), value);
    } else if (*number > max) {
      fail(key, "must be at most " + std::to_string(max) + ", got " + describe(value));
    } else {
      out = static_cast<Int>(*number);
    }
  }

  enum class zero { allowed, rejected };

  // A number of seconds, possibly fractional, kept with millisecond resolution.
  void seconds(std::string_view key, zero zero_rule, std::chrono::milliseconds& out) {
    const auto* value = find(key);
    if (value == nullptr) return;
    const bool positive = zero_rule == zero::rejected;
    const auto what = positive ? "a number of seconds > 0" : "a number of seconds >= 0";
    if (!value->is_number()) return expected(key, what, *value);
    const double number = value->to_number<double>();
    if (positive ? !(number > 0) : !(number >= 0)) return expected(key, what, *value);
    if (!(number <= max_seconds)) {
      return fail(key, "must be at most " + format_double(max_seconds) + " seconds, got " + describe(*value));
    }
    const auto milliseconds = std::llround(number * 1000);
    if (positive && milliseconds == 0) {
      return fail(key, "must be at least 0.001 seconds, got " + describe(*value));
    }
    out = std::chrono::milliseconds{milliseconds};
  }

  void text(std::string_view key, std::string& out) {
    const auto* value = find(key);
    if (value == nullptr) return;
    if (!value->is_string() || value->get_string().empty()) {
      return expected(key, "a non-empty string", *value);
    }
    out = value->get_string();
  }

  void boolean(std::string_view key, bool& out) {
    const auto* value = find(key);
    if (value == nullptr) return;
    if (!value->is_bool()) return expected(key, "true or false", *value);
    out = value->get_bool();
  }

  void optional_text(std::string_view key, std::optional<std::string>& out) {
    const auto* value = find(key);
    if (value == nullptr) return;
    if (value->is_null()) {
      out.reset();
    } else if (!value->is_string() || value->get_string().empty()) {
      expected(key, "a non-empty string or null", *value);
    } else {
      out = std::string(value->get_string());
    }
  }

  template <class Enum>
  void choice(std::string_view key, name_table<Enum> names, Enum& out) {
    const auto* value = find(key);
    if (value == nullptr) return;
    if (value->is_string()) {
      for (const auto& [name, candidate] : names) {
        if (value->get_string() == name) {
          out = candidate;
          return;
        }
      }
    }
    std::string list;
    for (const auto& entry : names) {
      if (!list.empty()) list += ", ";
      list += entry.first;
    }
    expected(key, "one of " + list, *value);
  }

  void address(std::string_view key, const json::value& value, bind_address& out) {
    if (!value.is_string()) return expected(key, "a bind address string", value);
    auto parsed = parse_bind_address(value.get_string());
    if (!parsed) return fail(key, parsed.error().message);
    out = std::move(*parsed);
  }

  // Whether `key` was looked up (it is one of the keys this reader knows).
  bool known(std::string_view key) const { return std::find(known_.begin(), known_.end(), key) != known_.end(); }

  // Called last: any key nobody looked up is an error (typos must not pass silently).
  void reject_unknown_keys() {
    for (const auto& entry : *object_) {
      if (failed()) return;
      if (std::find(known_.begin(), known_.end(), entry.key()) == known_.end()) {
        *error_ = config_problem{prefix_ + std::string(entry.key()), {}, config_value_error::kind::unknown_key};
      }
    }
  }

 private:
  const json::object* object_;
  std::string prefix_;  // "restart." inside "restart"
  std::optional<config_problem>* error_;
  std::vector<std::string_view> known_;
};

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

config_error invalid_json(std::string_view text, std::size_t offset, const boost::system::error_code& ec) {
  offset = std::min(offset, text.size());
  const auto before = text.substr(0, offset);
  const auto line = 1 + std::count(before.begin(), before.end(), '\n');
  const auto line_start = before.rfind('\n');
  const auto column = offset - (line_start == std::string_view::npos ? 0 : line_start + 1) + 1;
  return {"invalid JSON at line " + std::to_string(line) + " column " + std::to_string(column) + ": " + ec.message()};
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

boost::system::result<config, config_error> parse_config(std::string_view json_text) {
  return parse_config(json_text, config_rules{});
}

boost::system::result<config, config_error> parse_config(std::string_view json_text, const config_rules& rules) {
  json::stream_parser parser;
  boost::system::error_code ec;
  const auto consumed = parser.write(json_text.data(), json_text.size(), ec);
  if (ec) return invalid_json(json_text, consumed, ec);
  parser.finish(ec);
  if (ec) return invalid_json(json_text, json_text.size(), ec);
  const auto document = parser.release();
  if (!document.is_object()) {
    return config_error{"expected a JSON object at the top level, got " + describe(document)};
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

boost::system::result<config, config_error> load_config_file(const std::filesystem::path& file) {
  return load_config_file(file, config_rules{});
}

boost::system::result<config, config_error> load_config_file(const std::filesystem::path& file,
                                                             const config_rules& rules) {
  const auto cannot_read = [&file] {
    return config_error{"cannot read config file " + quote_json(file.string()) + ": " + std::strerror(errno)};
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
  if (!parsed) return config_error{quote_json(file.string()) + ": " + parsed.error().message};
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

std::string describe_config_value(const json::value& value) { return describe(value); }

config_value_error::config_value_error(std::string key, std::string why, kind problem)
    : std::runtime_error(problem == kind::unknown_key ? "unknown key " + quote_json(key)
                                                      : quote_json(key) + ": " + why),
      key_(std::move(key)),
      why_(std::move(why)),
      problem_(problem) {}

section_reader::section_reader(const json::value& section, std::string prefix) : prefix_(std::move(prefix)) {
  if (section.is_null()) {
    object_ = &empty_object();
  } else if (section.is_object()) {
    object_ = &section.get_object();
  } else {
    std::string key = prefix_;
    if (!key.empty()) key.pop_back();  // "limits." names "limits"
    throw config_value_error(std::move(key), "expected an object, got " + describe(section));
  }
}

namespace {

// Runs one read of object_reader on a section and turns its problem into an exception.
template <class Read>
void read_or_throw(const json::object& object, const std::string& prefix, Read read) {
  std::optional<config_problem> problem;
  object_reader reader(object, prefix, problem);
  read(reader);
  if (problem) throw config_value_error(std::move(problem->key), std::move(problem->why), problem->kind);
}

}  // namespace

void section_reader::integer(std::string_view key, std::int64_t min, std::int64_t& out, std::int64_t max) {
  known_.emplace_back(key);
  read_or_throw(*object_, prefix_, [&](object_reader& reader) { reader.integer(key, min, out, max); });
}

void section_reader::seconds(std::string_view key, std::chrono::milliseconds& out, zero zero_rule) {
  known_.emplace_back(key);
  const auto rule = zero_rule == zero::allowed ? object_reader::zero::allowed : object_reader::zero::rejected;
  read_or_throw(*object_, prefix_, [&](object_reader& reader) { reader.seconds(key, rule, out); });
}

void section_reader::text(std::string_view key, std::string& out) {
  known_.emplace_back(key);
  read_or_throw(*object_, prefix_, [&](object_reader& reader) { reader.text(key, out); });
}

void section_reader::boolean(std::string_view key, bool& out) {
  known_.emplace_back(key);
  read_or_throw(*object_, prefix_, [&](object_reader& reader) { reader.boolean(key, out); });
}

const json::value* section_reader::find(std::string_view key) {
  known_.emplace_back(key);
  return object_->if_contains(key);
}

section_reader section_reader::object(std::string_view key) {
  const auto* value = find(key);
  static const json::value none;
  return section_reader(value != nullptr ? *value : none, prefix_ + std::string(key) + ".");
}

void section_reader::reject_unknown_keys() const {
  for (const auto& entry : *object_) {
    if (std::find(known_.begin(), known_.end(), entry.key()) == known_.end())
      throw config_value_error(prefix_ + std::string(entry.key()), {}, config_value_error::kind::unknown_key);
  }
}

void section_reader::fail(std::string_view key, std::string why) const {
  throw config_value_error(prefix_ + std::string(key), std::move(why));
}

void section_reader::expected(std::string_view key, std::string_view what, const json::value& got) const {
  fail(key, "expected " + std::string(what) + ", got " + describe(got));
}

}  // namespace prefork
