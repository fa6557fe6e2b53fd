// The request side of prefork::testing::http_session: a request checked for what would
// not be well-formed on the wire, then serialized (the header, then the body, at once or
// after a 100 Continue); and the small text helpers its messages use.
#pragma once

#include "prefork/testing/http_session.hpp"

#include <cstddef>
#include <string>
#include <string_view>

namespace prefork::testing::detail {

/// ASCII case-insensitive equality (header names, `100-continue`).
bool equal_ignoring_case(std::string_view a, std::string_view b);

// `text` for a message: control characters as \r, \n, \xNN; at most `limit` bytes of it.
std::string printable(std::string_view text, std::size_t limit = 200);

/// Whether `headers` has a field called `name` (any case).
bool has_header(const http_headers& headers, std::string_view name);

// Throws std::invalid_argument for what would not be one well-formed request on the wire.
void check_request(const http_request& request);

// A request as it goes on the wire: the header, then the body (at once, or after a 100).
struct outgoing {
  std::string head;
  std::string_view body;
  bool head_method = false;  // the response has no body
  bool idempotent = false;   // may be sent twice
  bool await_continue = false;
};

/// `request` serialized: a Host and a Content-Length are added when it has none.
outgoing prepare(const http_request& request);

}  // namespace prefork::testing::detail
