// Response heads for http::serve: the status line, Server, Date, Content-Type, framing and
// Connection lines, written into the connection's output string.
#pragma once

#include "prefork/http/response.hpp"

#include <string>

namespace prefork::http::detail {

enum class connection_header { none, keep_alive, close };

/// How the body's end is shown: its length, the last chunk, or the connection's end.
enum class framing { content_length, chunked, until_close };

/// Whether a response with `status` has no content (RFC 9110 15.3.5, 15.4.5): no body,
/// and no Content-Length.
inline bool without_content(unsigned status) noexcept { return status == 204 || status == 304; }

/// Appends `answer`'s head to `out` (no allocation once its capacity is reached).
void append_head(std::string& out, const response& answer, connection_header connection,
                 framing frame = framing::content_length);

}  // namespace prefork::http::detail
