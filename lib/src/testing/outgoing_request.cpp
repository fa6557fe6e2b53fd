// Checking and serializing the requests prefork::testing::http_session sends.
#include "testing/outgoing_request.hpp"

#include <algorithm>
#include <cctype>
#include <stdexcept>
#include <string>
#include <string_view>

namespace prefork::testing::detail {
namespace {

// RFC 9110 5.6.2: tchar.
bool is_token(std::string_view text) {
  constexpr std::string_view symbols = "!#$%&'*+-.^_`|~";
  return !text.empty() && std::all_of(text.begin(), text.end(), [&](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || symbols.find(c) != std::string_view::npos;
  });
}

bool is_control_or_space(char c) {
  const auto byte = static_cast<unsigned char>(c);
  return byte <= 0x20 || byte == 0x7f;
}

bool idempotent(std::string_view method) {
  return method == "GET" || method == "HEAD" || method == "PUT" || method == "DELETE" || method == "OPTIONS" ||
         method == "TRACE";
}

std::string serialize_head(const http_request& request) {
  std::string head;
  head.reserve(64 + request.target.size());
  head.append(request.method).append(" ").append(request.target).append(" HTTP/1.1\r\n");
  if (!has_header(request.headers, "Host")) head.append("Host: localhost\r\n");
  const bool sized = has_header(request.headers, "Content-Length") || has_header(request.headers, "Transfer-Encoding");
  const bool carries_body =
      !request.body.empty() || request.method == "POST" || request.method == "PUT" || request.method == "PATCH";
  if (!sized && carries_body)
    head.append("Content-Length: ").append(std::to_string(request.body.size())).append("\r\n");
  for (const auto& [name, value] : request.headers) head.append(name).append(": ").append(value).append("\r\n");
  head.append("\r\n");
  return head;
}

}  // namespace

bool equal_ignoring_case(std::string_view a, std::string_view b) {
  return std::equal(a.begin(), a.end(), b.begin(), b.end(), [](char x, char y) {
    return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
  });
}

std::string printable(std::string_view text, std::size_t limit) {
  std::string out;
  for (char c : text.substr(0, limit)) {
    const auto byte = static_cast<unsigned char>(c);
    if (c == '\r') {
      out += "\\r";
    } else if (c == '\n') {
      out += "\\n";
    } else if (byte < 0x20 || byte == 0x7f) {
      constexpr char digits[] = "0123456789abcdef";
      out.append("\\x").append(1, digits[byte >> 4]).append(1, digits[byte & 0xf]);
    } else {
      out += c;
    }
  }
  if (text.size() > limit) out += "... (" + std::to_string(text.size()) + " bytes)";
  return out;
}

bool has_header(const http_headers& headers, std::string_view name) {
  return std::any_of(headers.begin(), headers.end(),
                     [&](const auto& field) { return equal_ignoring_case(field.first, name); });
}

void check_request(const http_request& request) {
  if (!is_token(request.method))
    throw std::invalid_argument("HTTP method \"" + printable(request.method) + "\" is not a token");
  if (request.target.empty() || std::any_of(request.target.begin(), request.target.end(), is_control_or_space))
    throw std::invalid_argument("HTTP target \"" + printable(request.target) +
                                "\" is empty or holds a space or control character");
  for (const auto& [name, value] : request.headers) {
    if (!is_token(name)) throw std::invalid_argument("header name \"" + printable(name) + "\" is not a token");
    if (value.find_first_of(std::string_view("\r\n\0", 3)) != std::string::npos)
      throw std::invalid_argument("header " + name + ": the value \"" + printable(value) + "\" holds CR, LF or NUL");
  }
}

outgoing prepare(const http_request& request) {
  outgoing out;
  out.head = serialize_head(request);
  out.body = request.body;
  out.head_method = request.method == "HEAD";
  out.idempotent = idempotent(request.method);
  out.await_continue =
      !request.body.empty() && std::any_of(request.headers.begin(), request.headers.end(), [](const auto& field) {
        return equal_ignoring_case(field.first, "Expect") && equal_ignoring_case(field.second, "100-continue");
      });
  return out;
}

}  // namespace prefork::testing::detail
