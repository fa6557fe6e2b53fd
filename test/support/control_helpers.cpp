#include "support/control_helpers.hpp"

#include <boost/json/serialize.hpp>
#include <boost/test/unit_test.hpp>

#include <limits>
#include <thread>

namespace prefork::test_support {

namespace fs = std::filesystem;
namespace json = boost::json;
using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;

fs::path control_socket(const server_process& server) {
  fs::path path = "ctl.sock";
  if (auto control = server.config().if_contains("control"); control && control->is_string()) {
    path = std::string(control->as_string());
  }
  return path.is_absolute() ? path : server.dir() / path;
}

json::value control_ok(const server_process& server, const json::object& request, std::chrono::milliseconds timeout) {
  auto result = control_call(control_socket(server), request, timeout);
  // Built first: the message of BOOST_REQUIRE_MESSAGE may be evaluated before the condition.
  std::string why;
  if (!result)
    why = json::serialize(request) + " failed: " + result.error().code + " " + result.error().message + "\n" +
          server.diagnostics();
  BOOST_REQUIRE_MESSAGE(result.has_value(), why);
  return *result;
}

control_client_error control_remote_error(const server_process& server, const json::object& request,
                                          std::chrono::milliseconds timeout) {
  auto result = control_call(control_socket(server), request, timeout);
  std::string why;
  if (result)
    why = json::serialize(request) + " succeeded with " + json::serialize(*result) + ", expected an error reply";
  else if (result.error().failure != control_failure::remote)
    why = json::serialize(request) + " failed without an error reply: " + result.error().message + "\n" +
          server.diagnostics();
  BOOST_REQUIRE_MESSAGE(why.empty(), why);
  return result.error();
}

json::object control_status(const server_process& server) {
  auto result = control_ok(server, {{"cmd", "status"}});
  BOOST_REQUIRE_MESSAGE(result.is_object(), "status is not an object: " << json::serialize(result));
  return result.as_object();
}

json::array control_workers(const server_process& server) {
  auto result = control_ok(server, {{"cmd", "workers"}});
  BOOST_REQUIRE_MESSAGE(result.is_array(), "workers is not an array: " << json::serialize(result));
  return result.as_array();
}

json::object control_stats(const server_process& server) {
  auto result = control_ok(server, {{"cmd", "stats"}});
  BOOST_REQUIRE_MESSAGE(result.is_object(), "stats is not an object: " << json::serialize(result));
  return result.as_object();
}

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

bool wait_control_ready(const server_process& server, std::chrono::milliseconds timeout, std::string& why,
                        std::optional<std::int64_t> desired) {
  auto deadline = clock_type::now() + timeout;
  for (;;) {
    auto status = control_call(control_socket(server), {{"cmd", "status"}}, 2s);
    if (!status) {
      why = "status: " + status.error().message;
    } else if (!status->is_object() || !status->as_object().contains("workers") ||
               !status->as_object().at("workers").is_object()) {
      why = "status without worker counts: " + json::serialize(*status);
    } else {
      const auto& counts = status->as_object().at("workers").as_object();
      auto wanted = json_int(counts, "desired");
      bool settled = wanted && json_int(counts, "ready") == wanted && json_int(counts, "starting") == 0 &&
                     json_int(counts, "draining") == 0 && (!desired || wanted == desired);
      if (settled) {
        why.clear();
        return true;
      }
      why = "status: " + json::serialize(*status);
    }
    if (clock_type::now() >= deadline) return false;
    std::this_thread::sleep_for(50ms);
  }
}

}  // namespace prefork::test_support
