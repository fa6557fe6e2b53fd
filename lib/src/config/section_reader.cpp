// section_reader and config_value_error: how an app reads and checks its own section of
// the configuration, with the same messages as preforkd's keys.
#include "config/config_reader.hpp"
#include "prefork/config.hpp"

#include <boost/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace prefork {
namespace {

using detail::config_problem;
using detail::describe;
using detail::empty_object;
using detail::object_reader;
using detail::quote_json;
namespace json = boost::json;

}  // namespace

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
