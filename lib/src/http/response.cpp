// response: status, content type, header lines and body, checked as they are set.
#include "prefork/http/response.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <string>
#include <utility>

namespace prefork::http {
namespace {

constexpr std::array<std::string_view, 5> reserved_fields = {"server", "date", "content-length", "transfer-encoding",
                                                             "connection"};

bool iequals(std::string_view a, std::string_view b) noexcept {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
         });
}

// RFC 9110 5.6.2: tchar.
bool is_token(std::string_view name) noexcept {
  constexpr std::string_view specials = "!#$%&'*+-.^_`|~";
  return !name.empty() && std::all_of(name.begin(), name.end(), [&](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) != 0 || specials.find(c) != std::string_view::npos;
  });
}

bool is_field_value(std::string_view value) noexcept {
  return value.find_first_of(std::string_view("\r\n\0", 3)) == std::string_view::npos;
}

void check_status(unsigned status, unsigned low) {
  if (status < low || status > 599)
    throw std::invalid_argument("HTTP status " + std::to_string(status) + ": expected " + std::to_string(low) +
                                "..599");
}

}  // namespace

response::response(unsigned status, std::string body, std::string_view content_type) : body_(std::move(body)) {
  set_status(status);
  set_content_type(content_type);
}

response& response::set_status(unsigned status) {
  check_status(status, 200);
  status_ = status;
  return *this;
}

response& response::set_body(std::string body) noexcept {
  body_ = std::move(body);
  return *this;
}

std::string_view response::content_type() const noexcept {
  switch (type_) {
    case known_type::none: return {};
    case known_type::text: return text_plain;
    case known_type::json: return application_json;
    case known_type::octet_stream: return application_octet_stream;
    case known_type::html: return text_html;
    case known_type::custom: return custom_type_;
  }
  return {};
}

response& response::set_content_type(std::string_view type) {
  if (!is_field_value(type)) throw std::invalid_argument("Content-Type: a value with CR, LF or NUL");
  custom_type_.clear();
  if (type.empty()) {
    type_ = known_type::none;
  } else if (type == text_plain) {
    type_ = known_type::text;
  } else if (type == application_json) {
    type_ = known_type::json;
  } else if (type == application_octet_stream) {
    type_ = known_type::octet_stream;
  } else if (type == text_html) {
    type_ = known_type::html;
  } else {
    type_ = known_type::custom;
    custom_type_ = type;
  }
  return *this;
}

response& response::set_header(std::string_view name, std::string_view value) {
  if (!is_token(name)) throw std::invalid_argument("header name \"" + std::string(name) + "\" is not an HTTP token");
  if (!is_field_value(value))
    throw std::invalid_argument("header " + std::string(name) + ": a value with CR, LF or NUL");
  if (iequals(name, "content-type")) return set_content_type(value);
  for (const std::string_view reserved : reserved_fields)
    if (iequals(name, reserved))
      throw std::invalid_argument("header " + std::string(name) + " is written by prefork's HTTP loop");
  header_lines_.append(name);
  header_lines_ += ": ";
  header_lines_.append(value);
  header_lines_ += "\r\n";
  return *this;
}

response& response::set_body_stream(body_stream next) {
  if (!next) throw std::invalid_argument("set_body_stream: an empty function");
  stream_ = std::move(next);
  return *this;
}

response& response::close_connection() noexcept {
  close_ = true;
  return *this;
}

response text(unsigned status, std::string body) { return response(status, std::move(body)); }

http_error::http_error(unsigned status, const std::string& message) : std::runtime_error(message), status_(status) {
  check_status(status, 400);
}

}  // namespace prefork::http
