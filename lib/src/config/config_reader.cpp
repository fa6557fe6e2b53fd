// The helpers behind object_reader: values described for messages, numbers read as
// integers.
#include "config/config_reader.hpp"

#include <array>
#include <charconv>
#include <cmath>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace prefork::detail {

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

}  // namespace prefork::detail
