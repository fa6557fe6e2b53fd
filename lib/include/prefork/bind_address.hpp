// A listener address in bind syntax: unix:PATH, HOST:PORT, [V6]:PORT, fd://N.
#pragma once

#include "prefork/error.hpp"

#include <boost/system/result.hpp>

#include <cstdint>
#include <string>
#include <string_view>

namespace prefork {

struct bind_address {
  enum class kind { unix_path, tcp, inherited_fd };
  kind type = kind::unix_path;
  std::string path;        // unix_path: as written (relative to the working directory)
  std::string host;        // tcp: "127.0.0.1", "::1", "0.0.0.0", "localhost" (no brackets)
  std::uint16_t port = 0;  // tcp: 0 picks a free port
  int fd = -1;             // inherited_fd

  friend bool operator==(const bind_address&, const bind_address&) = default;
};

/// Parses one bind entry. Errors say what is wrong, e.g.
/// `"127.0.0.1:99999": port must be 0..65535`.
prefork::result<bind_address> parse_bind_address(std::string_view text);

/// Formats back to bind syntax (IPv6 hosts in brackets).
std::string to_string(const bind_address& address);

}  // namespace prefork
