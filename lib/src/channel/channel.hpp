// The master<->worker channel: a SOCK_SEQPACKET socketpair carrying one frame per message
// (8-byte header, payload, 0..max_fds_per_frame descriptors by SCM_RIGHTS). Non-blocking
// send/receive plus a pure, fuzzable decoder; callers wait with Asio's async_wait.
#pragma once

#include <boost/system/error_code.hpp>
#include <boost/system/result.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <type_traits>

namespace prefork::detail {

/// What a frame carries. The numeric values are the wire values.
enum class frame_type : std::uint8_t {
  handoff = 1,   // master->worker: client descriptors, one listener_index each
  progress = 2,  // worker->master: cumulative progress_counters (the acknowledgement)
  control = 3,   // both ways: a Boost.JSON object as text, no descriptors
  handback = 4,  // worker->master: idle keep-alive descriptors, one listener_index each
};

inline constexpr std::size_t max_fds_per_frame = 32;
/// Largest message on the wire: header + payload.
inline constexpr std::size_t max_frame_bytes = 65536;
/// The fixed header: {uint8 type; uint8 version; uint16 reserved; uint32 payload_size},
/// native byte order (both ends are on the same host).
inline constexpr std::size_t frame_header_bytes = 8;
inline constexpr std::uint8_t frame_version = 1;

/// Payload of a progress frame: cumulative counters since the worker started.
struct progress_counters {
  std::uint64_t received = 0;  // descriptors received from the master
  std::uint64_t closed = 0;    // connections closed or handed back
  std::uint64_t requests = 0;  // requests served
};
static_assert(std::is_trivially_copyable_v<progress_counters> && sizeof(progress_counters) == 24);

/// Creates the channel: socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC).
/// [0] is the master's end, [1] the worker's. Reports socketpair's errno (EMFILE, ENFILE...).
boost::system::result<std::array<int, 2>> make_channel_pair();

/// Sends one frame with one sendmsg(MSG_NOSIGNAL | MSG_DONTWAIT), without allocating.
/// The frame is checked against the rules decode_frame applies (fds.size() <=
/// max_fds_per_frame, header + payload <= max_frame_bytes, per-type payload/descriptor
/// shape); a frame that breaks them is not sent and yields errc::frame_malformed.
/// Returns asio::error::would_block when the socket buffer is full (nothing was sent:
/// wait for wait_write and call again), the errno of sendmsg otherwise (EPIPE or
/// ECONNRESET: the peer is gone), or success. The caller keeps ownership of `fds`; the
/// peer receives duplicates.
boost::system::error_code send_frame(int socket, frame_type type, std::span<const std::byte> payload,
                                     std::span<const int> fds = {});

/// A received frame. `payload` points into the buffer given to receive_frame. The
/// descriptors fds[0, fd_count) are owned by whoever holds this struct: each must be taken
/// (and then forgotten here) or closed, e.g. with close_descriptors().
struct received_frame {
  frame_type type{};
  std::span<const std::byte> payload;
  std::array<int, max_fds_per_frame> fds{};
  std::size_t fd_count = 0;
  /// Set only with errc::frame_truncated, for a well-formed handoff or handback whose
  /// descriptors did not all arrive (MSG_CTRUNC: the receiver is out of descriptors):
  /// how many the sender sent (one per listener_index). `type` is set too; every
  /// descriptor is already closed. The receiver accounts for them as received and gone
  /// (a worker acknowledges them: the master closes its copies only then).
  std::size_t lost_fds = 0;

  /// Closes fds[0, fd_count) and sets fd_count to 0.
  void close_descriptors() noexcept;
};

/// Receives one frame with one recvmsg(MSG_CMSG_CLOEXEC | MSG_DONTWAIT) into `buffer`
/// (at least max_frame_bytes, else boost::system::errc::invalid_argument and nothing is
/// read), retrying on EINTR. `out` is overwritten: descriptors it held must already have
/// been taken or closed. Every SCM_RIGHTS descriptor of every cmsg is collected; they all
/// carry FD_CLOEXEC. Errors (no descriptor is left open on any of them):
///   asio::error::would_block   nothing to read now (wait for wait_read);
///   errc::channel_closed       the peer closed its end (orderly EOF);
///   errc::frame_truncated      MSG_TRUNC or MSG_CTRUNC (too many descriptors, the
///                              receiver out of descriptors: see lost_fds, or a
///                              message larger than max_frame_bytes);
///   errc::frame_malformed      decode_frame rejected it, including descriptors sent with
///                              a type that takes none, and a zero-length message;
///   another errno of recvmsg.
boost::system::error_code receive_frame(int socket, std::span<std::byte> buffer, received_frame& out);

/// A decoded frame; `payload` points into the message.
struct frame_view {
  frame_type type;
  std::span<const std::byte> payload;
};

/// Pure decoder of one message that arrived with `fd_count` descriptors. Checks the
/// header (size, version, reserved == 0, payload_size == remaining length, known type,
/// total <= max_frame_bytes) and the per-type shape: handoff/handback have 1..32
/// descriptors and exactly one uint32 listener_index per descriptor; progress has no
/// descriptors and exactly sizeof(progress_counters) bytes; control has no descriptors
/// and a non-empty payload. Any violation is errc::frame_malformed.
boost::system::result<frame_view> decode_frame(std::span<const std::byte> message, std::size_t fd_count);

/// The progress payload: a view of `counters`, which must outlive the view.
std::span<const std::byte> as_payload(const progress_counters& counters) noexcept;

/// A handoff/handback payload: a view of `listener_indices` (one per descriptor, same
/// order), which must outlive the view.
std::span<const std::byte> as_payload(std::span<const std::uint32_t> listener_indices) noexcept;

/// Reads a progress payload; errc::frame_malformed if its size is not exactly
/// sizeof(progress_counters).
boost::system::result<progress_counters> read_progress(std::span<const std::byte> payload);

/// The i-th listener_index of a handoff/handback payload (memcpy: the payload needs no
/// alignment). Precondition: i < payload.size() / 4, which decode_frame guarantees for
/// i < fd_count.
std::uint32_t read_listener_index(std::span<const std::byte> payload, std::size_t i) noexcept;

}  // namespace prefork::detail
