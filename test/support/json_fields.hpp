// Typed access to fields of the JSON that control replies and log lines carry.
#pragma once

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace prefork::test_support {

/// An integer JSON value (int64 or uint64 within range); nullopt for anything else or null.
std::optional<std::int64_t> json_int(const boost::json::value* value);
/// json_int(object.if_contains(key)).
std::optional<std::int64_t> json_int(const boost::json::object& object, std::string_view key);
/// The string at `key`, or "" when absent or not a string.
std::string json_string(const boost::json::object& object, std::string_view key);

}  // namespace prefork::test_support
