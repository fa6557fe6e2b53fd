// The JSON control messages on a worker's channel (not the hot path): what a worker tells
// the master (ready, heartbeat, draining), what the master tells a worker (reopen_logs, drain).
#pragma once

#include <boost/system/result.hpp>

#include <cstdint>
#include <string>
#include <string_view>

namespace prefork::detail {

enum class worker_message_kind {
  ready,        // worker -> master: serving; carries id, generation, pid
  heartbeat,    // worker -> master: alive; carries open, served
  draining,     // worker -> master: it got TERM and takes no more connections
  reopen_logs,  // master -> worker: reopen log files (USR1)
  // master -> worker (wire name "drain"): drain without handing idle connections back;
  // each serves its next request with `Connection: close` (an old master after USR2).
  // Not to be confused with `draining`, the worker's report.
  drain_without_handback,
};

struct worker_message {
  worker_message_kind kind = worker_message_kind::heartbeat;
  int id = 0;                    // ready
  std::uint64_t generation = 0;  // ready
  std::int64_t pid = 0;          // ready
  std::uint64_t open = 0;        // heartbeat: connections open in the worker
  std::uint64_t served = 0;      // heartbeat: requests answered since the worker started
};

/// Serializes a message as one JSON object: {"type":"ready","id":..,"generation":..,"pid":..}.
std::string encode_worker_message(const worker_message& message);

/// Parses a control payload; errors (not JSON, not an object, unknown type, missing
/// field) are reported as an error_code of errc::frame_malformed.
boost::system::result<worker_message> decode_worker_message(std::string_view payload);

}  // namespace prefork::detail
