// prefork's one error vocabulary: prefork::errc, its category, and the map from an error
// to preforkd's exit status (0 clean, 1 runtime, 2 usage/config, 3 bind/listen).
#pragma once

#include <boost/assert/source_location.hpp>
#include <boost/system/error_code.hpp>

#include <string>
#include <type_traits>

namespace prefork {

enum class errc {
  config_invalid = 1,  // a key has a wrong type, an impossible value, or is unknown
  usage,               // bad command line
  address_in_use,      // a live Unix socket or a bound TCP port
  not_a_socket,        // a bind path exists and is not a socket: never deleted
  bind_failed,         // any other bind/listen failure
  frame_malformed,     // a channel frame that does not decode
  frame_truncated,     // MSG_TRUNC or MSG_CTRUNC on a channel frame
  channel_closed,      // the peer of a channel went away
  backlog_full,        // a Unix listener's backlog stayed full until the connect's deadline
};

const boost::system::error_category& prefork_category() noexcept;

inline boost::system::error_code make_error_code(errc e) noexcept { return {static_cast<int>(e), prefork_category()}; }

/// preforkd's exit status for a fatal error: 2 usage/config, 3 bind/listen, else 1.
int exit_status_for(const boost::system::error_code& ec) noexcept;

/// A configuration or usage problem with a message that names the key and says why.
struct config_error {
  std::string message;
};

/// Lets boost::system::result<T, config_error>::value() throw std::runtime_error(message).
[[noreturn]] void throw_exception_from_error(const config_error& error, const boost::source_location& location);

}  // namespace prefork

namespace boost::system {
template <>
struct is_error_code_enum<prefork::errc> : std::true_type {};
}  // namespace boost::system
