// How one log line looks: the text and JSON layouts documented in prefork/log.hpp, rendered
// into a caller's buffer. Pure formatting: no descriptor, no global state, no lock (the
// timestamp is computed without gmtime_r, whose glibc lock a forked child could inherit held).
#pragma once

#include "prefork/log.hpp"

#include <span>
#include <string>
#include <string_view>

#include <time.h>

namespace prefork::detail {

/// Who writes a line: the fields every line carries besides its event.
struct log_identity {
  log_role role = log_role::master;
  int worker_id = -1;  // written only when role is worker
  int pid = 0;
};

/// Appends one complete line, newline included, in `format`. Throws only std::bad_alloc.
void render_log_line(std::string& out, log_format format, log_level level, std::string_view message,
                     std::span<const log_field> fields, const log_identity& who, const timespec& now);

/// Appends `now` as RFC 3339 UTC with milliseconds: 2026-11-26T16:02:23.123Z.
void append_utc_timestamp(std::string& out, const timespec& now);

}  // namespace prefork::detail
