#include "channel/channel.hpp"

#include "prefork/error.hpp"

#include <boost/asio/error.hpp>
#include <boost/assert.hpp>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

namespace prefork::detail {

namespace asio = boost::asio;

namespace {

struct frame_header {
  std::uint8_t type;
  std::uint8_t version;
  std::uint16_t reserved;
  std::uint32_t payload_size;
};
static_assert(sizeof(frame_header) == frame_header_bytes && std::is_trivially_copyable_v<frame_header>);

// Room for exactly max_fds_per_frame descriptors: a peer sending more gets MSG_CTRUNC, and
// the kernel closes what did not fit. The union gives cmsghdr's alignment.
union control_buffer {
  cmsghdr header;
  unsigned char bytes[CMSG_SPACE(sizeof(int) * max_fds_per_frame)];
};

boost::system::error_code errno_code(int error) noexcept { return {error, boost::system::system_category()}; }

bool known_type(std::uint8_t type) noexcept {
  return type >= static_cast<std::uint8_t>(frame_type::handoff) &&
         type <= static_cast<std::uint8_t>(frame_type::handback);
}

// The per-type rules shared by the sender (refuse to send) and the decoder (refuse to accept).
bool shape_is_valid(frame_type type, std::size_t payload_size, std::size_t fd_count) noexcept {
  if (fd_count > max_fds_per_frame || payload_size > max_frame_bytes - frame_header_bytes) return false;
  switch (type) {
    case frame_type::handoff:
    case frame_type::handback: return fd_count >= 1 && payload_size == fd_count * sizeof(std::uint32_t);
    case frame_type::progress: return fd_count == 0 && payload_size == sizeof(progress_counters);
    case frame_type::control: return fd_count == 0 && payload_size > 0;
  }
  return false;
}

void close_all(const int* fds, std::size_t count) noexcept {
  for (std::size_t i = 0; i < count; ++i) ::close(fds[i]);
}

// recvmsg returned 0 bytes. On a SEQPACKET socket that is either EOF or a zero-length
// message from a live peer; the peer's close sets our RCV_SHUTDOWN, which poll reports.
bool peer_has_closed(int socket) noexcept {
  pollfd entry{socket, POLLRDHUP, 0};
  int ready;
  do {
    ready = ::poll(&entry, 1, 0);
  } while (ready < 0 && errno == EINTR);
  return ready > 0 && (entry.revents & (POLLRDHUP | POLLHUP)) != 0;
}

}  // namespace

boost::system::result<std::array<int, 2>> make_channel_pair() {
  std::array<int, 2> ends{-1, -1};
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, ends.data()) != 0)
    return errno_code(errno);
  return ends;
}

boost::system::error_code send_frame(int socket, frame_type type, std::span<const std::byte> payload,
                                     std::span<const int> fds) {
  if (!shape_is_valid(type, payload.size(), fds.size())) return errc::frame_malformed;

  frame_header header{static_cast<std::uint8_t>(type), frame_version, 0, static_cast<std::uint32_t>(payload.size())};
  // sendmsg does not write through iov_base; the casts only satisfy its C signature.
  iovec parts[2] = {{&header, sizeof header}, {const_cast<std::byte*>(payload.data()), payload.size()}};

  msghdr message{};
  message.msg_iov = parts;
  message.msg_iovlen = 2;

  control_buffer control;
  if (!fds.empty()) {
    std::memset(control.bytes, 0, sizeof control.bytes);
    message.msg_control = control.bytes;
    message.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
    cmsghdr* rights = CMSG_FIRSTHDR(&message);
    rights->cmsg_level = SOL_SOCKET;
    rights->cmsg_type = SCM_RIGHTS;
    rights->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
    std::memcpy(CMSG_DATA(rights), fds.data(), sizeof(int) * fds.size());
  }

  const std::size_t total = sizeof header + payload.size();
  ssize_t sent;
  do {
    sent = ::sendmsg(socket, &message, MSG_NOSIGNAL | MSG_DONTWAIT);
  } while (sent < 0 && errno == EINTR);
  if (sent < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) return asio::error::would_block;
    return errno_code(errno);
  }
  // A SEQPACKET message goes out whole or not at all; anything else is a kernel surprise.
  if (static_cast<std::size_t>(sent) != total) return errc::frame_truncated;
  return {};
}

void received_frame::close_descriptors() noexcept {
  close_all(fds.data(), fd_count);
  fds.fill(-1);
  fd_count = 0;
}

boost::system::error_code receive_frame(int socket, std::span<std::byte> buffer, received_frame& out) {
  out = received_frame{};
  if (buffer.size() < max_frame_bytes)
    return boost::system::errc::make_error_code(boost::system::errc::invalid_argument);

  // At most max_frame_bytes are read: a larger message comes back with MSG_TRUNC.
  iovec part{buffer.data(), max_frame_bytes};
  control_buffer control;
  msghdr message{};
  ssize_t received;
  do {
    message = msghdr{};
    message.msg_iov = &part;
    message.msg_iovlen = 1;
    message.msg_control = control.bytes;
    message.msg_controllen = sizeof control.bytes;
    received = ::recvmsg(socket, &message, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
  } while (received < 0 && errno == EINTR);
  if (received < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) return asio::error::would_block;
    return errno_code(errno);
  }

  // Collect every descriptor of every SCM_RIGHTS cmsg first, so that each error path below
  // can close them all. The buffer holds at most max_fds_per_frame; the guard is defensive.
  bool overflow = false;
  for (cmsghdr* item = CMSG_FIRSTHDR(&message); item != nullptr; item = CMSG_NXTHDR(&message, item)) {
    if (item->cmsg_level != SOL_SOCKET || item->cmsg_type != SCM_RIGHTS) continue;
    const std::size_t count = (item->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (std::size_t i = 0; i < count; ++i) {
      int fd;
      std::memcpy(&fd, CMSG_DATA(item) + i * sizeof(int), sizeof fd);  // CMSG_DATA may be unaligned
      if (out.fd_count < max_fds_per_frame) {
        out.fds[out.fd_count++] = fd;
      } else {
        ::close(fd);
        overflow = true;
      }
    }
  }

  if (overflow || (message.msg_flags & (MSG_CTRUNC | MSG_TRUNC)) != 0) {
    out.close_descriptors();
    // MSG_CTRUNC alone, within max_fds_per_frame: the kernel could not install them all
    // (EMFILE). A handoff/handback says by its listener indices how many were sent, and
    // the receiver must account for them, or the sender's ledger never settles.
    const auto size = static_cast<std::size_t>(received);
    if (!overflow && (message.msg_flags & MSG_TRUNC) == 0 && size >= frame_header_bytes) {
      const std::size_t sent = (size - frame_header_bytes) / sizeof(std::uint32_t);
      auto decoded = decode_frame(std::span<const std::byte>(buffer.data(), size), sent);
      if (decoded && (decoded->type == frame_type::handoff || decoded->type == frame_type::handback)) {
        out.type = decoded->type;
        out.lost_fds = sent;
      }
    }
    return errc::frame_truncated;
  }
  if (received == 0 && out.fd_count == 0 && peer_has_closed(socket)) return errc::channel_closed;

  auto decoded =
      decode_frame(std::span<const std::byte>(buffer.data(), static_cast<std::size_t>(received)), out.fd_count);
  if (!decoded) {
    out.close_descriptors();
    return decoded.error();
  }
  out.type = decoded->type;
  out.payload = decoded->payload;
  return {};
}

boost::system::result<frame_view> decode_frame(std::span<const std::byte> message, std::size_t fd_count) {
  if (message.size() < frame_header_bytes || message.size() > max_frame_bytes) return errc::frame_malformed;
  frame_header header;
  std::memcpy(&header, message.data(), sizeof header);
  if (header.version != frame_version || header.reserved != 0) return errc::frame_malformed;
  if (header.payload_size != message.size() - frame_header_bytes) return errc::frame_malformed;
  if (!known_type(header.type)) return errc::frame_malformed;
  const auto type = static_cast<frame_type>(header.type);
  if (!shape_is_valid(type, header.payload_size, fd_count)) return errc::frame_malformed;
  return frame_view{type, message.subspan(frame_header_bytes)};
}

std::span<const std::byte> as_payload(const progress_counters& counters) noexcept {
  return std::as_bytes(std::span<const progress_counters, 1>(&counters, 1));
}

std::span<const std::byte> as_payload(std::span<const std::uint32_t> listener_indices) noexcept {
  return std::as_bytes(listener_indices);
}

boost::system::result<progress_counters> read_progress(std::span<const std::byte> payload) {
  if (payload.size() != sizeof(progress_counters)) return errc::frame_malformed;
  progress_counters counters;
  std::memcpy(&counters, payload.data(), sizeof counters);
  return counters;
}

std::uint32_t read_listener_index(std::span<const std::byte> payload, std::size_t i) noexcept {
  BOOST_ASSERT(i < payload.size() / sizeof(std::uint32_t));
  std::uint32_t index;
  std::memcpy(&index, payload.data() + i * sizeof index, sizeof index);
  return index;
}

}  // namespace prefork::detail
