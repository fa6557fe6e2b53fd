#include "channel/worker_message.hpp"

#include "prefork/error.hpp"

#include <boost/json.hpp>

#include <limits>

namespace prefork::detail {

namespace json = boost::json;

std::string encode_worker_message(const worker_message& message) {
  json::object object;
  switch (message.kind) {
    case worker_message_kind::ready:
      object["type"] = "ready";
      object["id"] = message.id;
      object["generation"] = message.generation;
      object["pid"] = message.pid;
      break;
    case worker_message_kind::heartbeat:
      object["type"] = "heartbeat";
      object["open"] = message.open;
      object["served"] = message.served;
      break;
    case worker_message_kind::draining: object["type"] = "draining"; break;
    case worker_message_kind::reopen_logs: object["type"] = "reopen_logs"; break;
    case worker_message_kind::drain_without_handback: object["type"] = "drain"; break;
  }
  return json::serialize(object);
}

namespace {
bool read_unsigned(const json::object& object, std::string_view key, std::uint64_t& out) {
  const json::value* value = object.if_contains(key);
  if (value == nullptr) return false;
  if (const auto* u = value->if_uint64()) {
    out = *u;
    return true;
  }
  if (const auto* i = value->if_int64(); i != nullptr && *i >= 0) {
    out = static_cast<std::uint64_t>(*i);
    return true;
  }
  return false;
}
}  // namespace

boost::system::result<worker_message> decode_worker_message(std::string_view payload) {
  boost::system::error_code ec;
  json::value value = json::parse(payload, ec);
  const json::object* object = ec ? nullptr : value.if_object();
  if (object == nullptr) return make_error_code(errc::frame_malformed);
  const json::value* type = object->if_contains("type");
  if (type == nullptr || !type->is_string()) return make_error_code(errc::frame_malformed);
  worker_message message;
  const json::string& name = type->get_string();
  if (name == "ready") {
    std::uint64_t id = 0, pid = 0;
    message.kind = worker_message_kind::ready;
    if (!read_unsigned(*object, "id", id) || !read_unsigned(*object, "generation", message.generation) ||
        !read_unsigned(*object, "pid", pid))
      return make_error_code(errc::frame_malformed);
    // Out of range for the fields: malformed, not silently truncated.
    if (id > static_cast<std::uint64_t>(std::numeric_limits<int>::max()) ||
        pid > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
      return make_error_code(errc::frame_malformed);
    message.id = static_cast<int>(id);
    message.pid = static_cast<std::int64_t>(pid);
  } else if (name == "heartbeat") {
    message.kind = worker_message_kind::heartbeat;
    if (!read_unsigned(*object, "open", message.open) || !read_unsigned(*object, "served", message.served))
      return make_error_code(errc::frame_malformed);
  } else if (name == "draining") {
    message.kind = worker_message_kind::draining;
  } else if (name == "reopen_logs") {
    message.kind = worker_message_kind::reopen_logs;
  } else if (name == "drain") {
    message.kind = worker_message_kind::drain_without_handback;
  } else {
    return make_error_code(errc::frame_malformed);
  }
  return message;
}

}  // namespace prefork::detail
