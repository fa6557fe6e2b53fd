#include "support/json_fields.hpp"

#include <limits>

namespace prefork::test_support {

namespace json = boost::json;

std::optional<std::int64_t> json_int(const json::value* value) {
  if (value == nullptr) return std::nullopt;
  if (value->is_int64()) return value->as_int64();
  if (value->is_uint64() &&
      value->as_uint64() <= static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
    return static_cast<std::int64_t>(value->as_uint64());
  }
  return std::nullopt;
}

std::optional<std::int64_t> json_int(const json::object& object, std::string_view key) {
  return json_int(object.if_contains(key));
}

std::string json_string(const json::object& object, std::string_view key) {
  auto value = object.if_contains(key);
  if (value == nullptr || !value->is_string()) return {};
  return std::string(value->as_string());
}

}  // namespace prefork::test_support
