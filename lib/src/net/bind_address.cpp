#include "prefork/bind_address.hpp"

#include <arpa/inet.h>
#include <sys/un.h>

#include <algorithm>
#include <charconv>

namespace prefork {
namespace {

// sun_path holds the path and its terminating NUL.
constexpr std::size_t max_unix_path_bytes = sizeof(sockaddr_un{}.sun_path) - 1;

failure fail(std::string_view text, std::string_view why) {
  std::string message;
  message.reserve(text.size() + why.size() + 4);
  message.append("\"").append(text).append("\": ").append(why);
  return {errc::config_invalid, std::move(message)};
}

bool is_ipv4(std::string_view host) {
  in_addr bytes{};
  return inet_pton(AF_INET, std::string(host).c_str(), &bytes) == 1;
}

// Accepts an optional zone after '%' (fe80::1%eth0), as Asio's make_address_v6 does.
bool is_ipv6(std::string_view host) {
  const auto percent = host.find('%');
  if (percent != std::string_view::npos && percent + 1 == host.size()) return false;
  in6_addr bytes{};
  return inet_pton(AF_INET6, std::string(host.substr(0, percent)).c_str(), &bytes) == 1;
}

// A DNS name such as "localhost" or "api.example.com" (resolved at bind time).
bool is_hostname(std::string_view host) {
  const auto allowed = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.';
  };
  return host.size() <= 253 && std::all_of(host.begin(), host.end(), allowed) && host.front() != '-' &&
         host.front() != '.';
}

prefork::result<std::uint16_t> parse_port(std::string_view text, std::string_view port) {
  if (port.empty()) return fail(text, "port is missing");
  unsigned value = 0;
  const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (ec != std::errc{} || end != port.data() + port.size() || value > 65535) {
    return fail(text, "port must be 0..65535");
  }
  return static_cast<std::uint16_t>(value);
}

}  // namespace

prefork::result<bind_address> parse_bind_address(std::string_view text) {
  bind_address address;
  if (text.starts_with("unix:")) {
    address.type = bind_address::kind::unix_path;
    address.path = text.substr(5);
    if (address.path.empty()) return fail(text, "socket path is empty");
    if (address.path.find('\0') != std::string::npos) {
      return fail(text, "socket path contains a NUL byte");
    }
    if (address.path.size() > max_unix_path_bytes) {
      return fail(text, "socket path is " + std::to_string(address.path.size()) + " bytes, the limit is " +
                            std::to_string(max_unix_path_bytes));
    }
    return address;
  }

  if (text.starts_with("fd://")) {
    const auto digits = text.substr(5);
    address.type = bind_address::kind::inherited_fd;
    const auto* digits_end = digits.data() + digits.size();
    const auto [end, ec] = std::from_chars(digits.data(), digits_end, address.fd);
    if (digits.empty() || digits.front() < '0' || digits.front() > '9' || ec != std::errc{} || end != digits_end) {
      return fail(text, "descriptor must be an integer >= 0");
    }
    return address;
  }

  address.type = bind_address::kind::tcp;
  std::string_view port;
  if (text.starts_with("[")) {
    const auto close = text.find("]:");
    if (close == std::string_view::npos) return fail(text, "expected [V6]:PORT");
    const auto host = text.substr(1, close - 1);
    if (!is_ipv6(host)) return fail(text, "invalid IPv6 address \"" + std::string(host) + "\"");
    address.host = host;
    port = text.substr(close + 2);
  } else {
    const auto colon = text.rfind(':');
    if (colon == std::string_view::npos) {
      return fail(text, "expected unix:PATH, HOST:PORT, [V6]:PORT or fd://N");
    }
    const auto host = text.substr(0, colon);
    if (host.empty()) return fail(text, "host is empty");
    if (host.find(':') != std::string_view::npos) {
      return fail(text, "an IPv6 address needs brackets, as in [::1]:8000");
    }
    const bool dotted_numbers = host.find_first_not_of("0123456789.") == std::string_view::npos;
    if (dotted_numbers ? !is_ipv4(host) : !is_hostname(host)) {
      return fail(text, std::string(dotted_numbers ? "invalid IPv4 address" : "invalid host name") + " \"" +
                            std::string(host) + "\"");
    }
    address.host = host;
    port = text.substr(colon + 1);
  }
  const auto parsed_port = parse_port(text, port);
  if (!parsed_port) return parsed_port.error();
  address.port = *parsed_port;
  return address;
}

std::string to_string(const bind_address& address) {
  switch (address.type) {
    case bind_address::kind::unix_path: return "unix:" + address.path;
    case bind_address::kind::inherited_fd: return "fd://" + std::to_string(address.fd);
    case bind_address::kind::tcp: break;
  }
  const bool v6 = address.host.find(':') != std::string::npos;
  return (v6 ? "[" + address.host + "]" : address.host) + ":" + std::to_string(address.port);
}

}  // namespace prefork
