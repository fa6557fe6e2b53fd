// Reading a JSON configuration document key by key (STYLE 10): object_reader checks each
// key it is asked for and keeps the first problem with its whole key path. Shared by
// parse_config (preforkd's keys), section_reader (apps' sections) and to_json.
#pragma once

#include "prefork/config.hpp"

#include <boost/json.hpp>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <limits>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace prefork::detail {

namespace json = boost::json;

constexpr int max_workers = 1024;
// Durations beyond ~31 years are typos; the bound also keeps the millisecond count finite.
constexpr double max_seconds = 1e9;
// The same bound for durations given in milliseconds: a clock's now() plus one must not
// overflow its nanosecond count.
constexpr long max_milliseconds = 1'000'000'000'000;

template <class Enum>
using name_table = std::span<const std::pair<std::string_view, Enum>>;

inline constexpr std::array<std::pair<std::string_view, log_level>, 6> log_level_names{{
    {"trace", log_level::trace},
    {"debug", log_level::debug},
    {"info", log_level::info},
    {"warning", log_level::warning},
    {"error", log_level::error},
    {"fatal", log_level::fatal},
}};
inline constexpr std::array<std::pair<std::string_view, log_format>, 2> log_format_names{{
    {"text", log_format::text},
    {"json", log_format::json},
}};
inline constexpr std::array<std::pair<std::string_view, dispatch_kind>, 2> dispatch_names{{
    {"least-connections", dispatch_kind::least_connections},
    {"round-robin", dispatch_kind::round_robin},
}};

/// `text` as a JSON string literal (quoted and escaped), for messages.
std::string quote_json(std::string_view text);

/// The shortest text that reads back as `value`.
std::string format_double(double value);

/// How a value appears after "got" in a message: JSON for scalars, a word for containers.
std::string describe(const json::value& value);

/// The value as an integer if it is one (integral doubles such as 4.0 count).
std::optional<long double> integer_value(const json::value& value);

/// An empty object that lives forever: what an absent object reads as.
const json::object& empty_object();

// The first problem found in a document: the whole key path and what is wrong with it.
struct config_problem {
  std::string key;  // "restart.min_uptime_ms"
  std::string why;  // "expected an integer >= 0, got -1"; unused for an unknown key
  config_value_error::kind kind = config_value_error::kind::bad_value;

  failure to_error() const {
    if (kind == config_value_error::kind::unknown_key) return {errc::config_invalid, "unknown key " + quote_json(key)};
    return {errc::config_invalid, quote_json(key) + ": " + why};
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

}  // namespace prefork::detail
