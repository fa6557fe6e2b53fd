#include "prefork/error.hpp"

#include <boost/system/system_error.hpp>
#include <boost/throw_exception.hpp>

#include <array>
#include <ostream>
#include <utility>

namespace prefork {
namespace {

class category_impl final : public boost::system::error_category {
 public:
  const char* name() const noexcept override { return "prefork"; }
  std::string message(int ev) const override {
    switch (static_cast<errc>(ev)) {
      case errc::config_invalid: return "invalid configuration";
      case errc::usage: return "usage error";
      case errc::address_in_use: return "address in use";
      case errc::not_a_socket: return "path exists and is not a socket";
      case errc::bind_failed: return "cannot bind or listen";
      case errc::frame_malformed: return "malformed channel frame";
      case errc::frame_truncated: return "truncated channel frame";
      case errc::channel_closed: return "channel closed";
      case errc::backlog_full: return "the listener's backlog stayed full (nobody accepted in time)";
      case errc::bad_json: return "the request is not JSON";
      case errc::bad_request: return "bad request";
      case errc::unknown_command: return "unknown command";
      case errc::not_found: return "not found";
      case errc::forbidden: return "forbidden";
      case errc::too_large: return "request too large";
      case errc::reload_failed: return "reload failed";
      case errc::reopen_failed: return "cannot reopen the log file";
      case errc::unreachable: return "control socket unreachable";
      case errc::timeout: return "timed out";
      case errc::disconnected: return "disconnected before a whole reply";
      case errc::bad_reply: return "not a control reply";
    }
    return "unknown prefork error";
  }
};

}  // namespace

const boost::system::error_category& prefork_category() noexcept {
  static const category_impl instance;
  return instance;
}

void throw_exception_from_error(const failure& error, const boost::source_location& location) {
  boost::throw_exception(boost::system::system_error(error.code, error.message), location);
}

std::ostream& operator<<(std::ostream& out, errc code) { return out << make_error_code(code); }

int exit_status_for(const boost::system::error_code& ec) noexcept {
  if (ec.category() == prefork_category()) {
    switch (static_cast<errc>(ec.value())) {
      case errc::config_invalid:
      case errc::usage: return 2;
      case errc::address_in_use:
      case errc::not_a_socket:
      case errc::bind_failed: return 3;
      default: return 1;
    }
  }
  return 1;
}

namespace {
constexpr std::array<std::pair<errc, std::string_view>, 8> control_codes{{
    {errc::bad_json, "bad_json"},
    {errc::bad_request, "bad_request"},
    {errc::unknown_command, "unknown_command"},
    {errc::not_found, "not_found"},
    {errc::forbidden, "forbidden"},
    {errc::too_large, "too_large"},
    {errc::reload_failed, "reload_failed"},
    {errc::reopen_failed, "reopen_failed"},
}};
}  // namespace

std::string_view control_code_name(errc code) noexcept {
  for (const auto& [value, name] : control_codes)
    if (value == code) return name;
  return {};
}

std::string_view control_code_name(const boost::system::error_code& code) noexcept {
  if (code.category() != prefork_category()) return {};
  return control_code_name(static_cast<errc>(code.value()));
}

std::optional<errc> control_code_from_name(std::string_view name) noexcept {
  for (const auto& [value, wire] : control_codes)
    if (wire == name) return value;
  return std::nullopt;
}

}  // namespace prefork
