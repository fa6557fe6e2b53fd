#include "prefork/error.hpp"

#include <boost/throw_exception.hpp>

#include <stdexcept>

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
    }
    return "unknown prefork error";
  }
};

}  // namespace

const boost::system::error_category& prefork_category() noexcept {
  static const category_impl instance;
  return instance;
}

void throw_exception_from_error(const config_error& error, const boost::source_location& location) {
  boost::throw_exception(std::runtime_error(error.message), location);
}

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

}  // namespace prefork
