// What unit tests of the HTTP apps need to read raw responses off a socket: where the
// first complete response in a byte stream ends, and its parts.
#pragma once

#include <chrono>
#include <cstddef>
#include <string>
#include <string_view>

namespace prefork::unit_support {

/// Whole milliseconds in `duration`, for messages and bounds.
long millis(std::chrono::steady_clock::duration duration);

/// The length of the first complete response in `data` (header, then Content-Length
/// bytes of body unless it answers HEAD); 0 while it is incomplete.
std::size_t complete_response_length(std::string_view data, bool head);

/// Whether the header of `response` has the line `line` (e.g. "Connection: close"), exactly.
bool has_line(const std::string& response, std::string_view line);
/// The status line ("HTTP/1.1 200 OK").
std::string status_line(const std::string& response);
/// Everything after the header; empty when the header is incomplete.
std::string body_of(const std::string& response);

/// The body of a response sent with `Transfer-Encoding: chunked`, decoded (as far as it
/// goes: a response cut short gives the chunks that came).
std::string dechunked_body_of(const std::string& response);

}  // namespace prefork::unit_support
