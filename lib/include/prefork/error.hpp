// prefork's one error vocabulary: every error is a prefork::failure, a code of the
// prefork::errc category (or a system errno) plus a message that names what failed and
// why; fallible calls return prefork::result<T>. Also the map from an error to preforkd's
// exit status (0 clean, 1 runtime, 2 usage/config, 3 bind/listen) and the control
// protocol's wire names of its error codes.
#pragma once

#include <boost/assert/source_location.hpp>
#include <boost/system/error_code.hpp>
#include <boost/system/result.hpp>

#include <iosfwd>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>

namespace prefork {

enum class errc {
  // configuration and start-up
  config_invalid = 1,  // a key has a wrong type, an impossible value, or is unknown
  usage,               // bad command line
  address_in_use,      // a live Unix socket or a bound TCP port
  not_a_socket,        // a bind path exists and is not a socket: never deleted
  bind_failed,         // any other bind/listen failure
  // the master-worker channel
  frame_malformed,  // a channel frame that does not decode
  frame_truncated,  // MSG_TRUNC or MSG_CTRUNC on a channel frame
  channel_closed,   // the peer of a channel went away
  backlog_full,     // a Unix listener's backlog stayed full until the connect's deadline
  // a control reply's error codes: SPEC section 3's, in its order, then prefork's own
  bad_json,         // the request line is not JSON
  bad_request,      // not a request object, or a bad argument
  unknown_command,  // no such command
  not_found,        // no such worker
  forbidden,        // the caller's uid may not use the socket
  too_large,        // a request line over 64 KiB
  reload_failed,    // a waited-for reload was abandoned (prefork's own)
  reopen_failed,    // the log file could not be reopened (prefork's own)
  // a control call that got no reply
  unreachable,   // cannot connect: no socket file, nobody accepts, no permission, path too long
  timeout,       // a deadline passed before the step finished
  disconnected,  // the connection failed or closed before a whole reply arrived
  bad_reply,     // the reply is not a reply object
};

const boost::system::error_category& prefork_category() noexcept;

inline boost::system::error_code make_error_code(errc e) noexcept { return {static_cast<int>(e), prefork_category()}; }

/// Prints the code as its error_code does ("prefork:13"), for test messages and logs.
std::ostream& operator<<(std::ostream& out, errc code);

/// An error with its context: `code` says what kind (prefork::errc, or a system errno
/// such as ECONNREFUSED); `message` is for people and names the thing that failed and
/// why, e.g. `"--bind": unix:run/x.sock: address in use (another process accepts on it)`.
struct failure {
  boost::system::error_code code;
  std::string message;
};

/// What a fallible call returns: a T, or the failure that prevented it.
template <class T>
using result = boost::system::result<T, failure>;

/// Lets result<T>::value() throw boost::system::system_error(code, message).
[[noreturn]] void throw_exception_from_error(const failure& error, const boost::source_location& location);

/// preforkd's exit status for a fatal error: 2 usage/config, 3 bind/listen, else 1.
int exit_status_for(const boost::system::error_code& ec) noexcept;

/// The wire name of a control reply's error code ("not_found"); empty for an errc that is
/// not one (the control server answers those as bad_request, never on purpose).
std::string_view control_code_name(errc code) noexcept;
/// The same for any error code: empty unless it is one of prefork's control codes.
std::string_view control_code_name(const boost::system::error_code& code) noexcept;
/// The errc of a control reply's wire code, if it is one this version knows.
std::optional<errc> control_code_from_name(std::string_view name) noexcept;

}  // namespace prefork

namespace boost::system {
template <>
struct is_error_code_enum<prefork::errc> : std::true_type {};
}  // namespace boost::system
