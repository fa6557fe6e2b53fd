#include "channel/channel.hpp"

#include "prefork/error.hpp"

#include <boost/asio/error.hpp>
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <array>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <vector>

#include <fcntl.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

namespace asio = boost::asio;
using prefork::errc;
using namespace prefork::detail;

namespace {

// Both ends of a fresh channel, closed at the end of the test unless a test closed one
// (and set it to -1) itself.
struct channel_pair {
  int master = -1;
  int worker = -1;
  channel_pair() {
    auto ends = make_channel_pair();
    BOOST_TEST_REQUIRE(ends.has_value());
    master = (*ends)[0];
    worker = (*ends)[1];
  }
  channel_pair(const channel_pair&) = delete;
  channel_pair& operator=(const channel_pair&) = delete;
  ~channel_pair() {
    close_master();
    close_worker();
  }
  void close_master() {
    if (master >= 0) ::close(master);
    master = -1;
  }
  void close_worker() {
    if (worker >= 0) ::close(worker);
    worker = -1;
  }
};

// A pipe, both ends closed at the end of the test.
struct test_pipe {
  int read_end = -1;
  int write_end = -1;
  test_pipe() {
    int ends[2];
    BOOST_TEST_REQUIRE(::pipe2(ends, O_CLOEXEC) == 0);
    read_end = ends[0];
    write_end = ends[1];
  }
  test_pipe(const test_pipe&) = delete;
  test_pipe& operator=(const test_pipe&) = delete;
  ~test_pipe() {
    if (read_end >= 0) ::close(read_end);
    if (write_end >= 0) ::close(write_end);
  }
};

std::size_t count_open_fds() {
  std::size_t count = 0;
  for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator("/proc/self/fd")) ++count;
  return count;
}

bool same_open_file(int a, int b) {
  struct stat sa {};
  struct stat sb {};
  if (::fstat(a, &sa) != 0 || ::fstat(b, &sb) != 0) return false;
  return sa.st_ino == sb.st_ino && sa.st_dev == sb.st_dev;
}

bool has_cloexec(int fd) {
  const int flags = ::fcntl(fd, F_GETFD);
  return flags >= 0 && (flags & FD_CLOEXEC) != 0;
}

// A message with a hand-made header, for the decoder and for raw sends.
std::vector<std::byte> make_message(std::uint8_t type, std::span<const std::byte> payload, std::uint8_t version = 1,
                                    std::uint16_t reserved = 0) {
  std::vector<std::byte> message(frame_header_bytes + payload.size());
  const auto payload_size = static_cast<std::uint32_t>(payload.size());
  std::memcpy(message.data(), &type, 1);
  std::memcpy(message.data() + 1, &version, 1);
  std::memcpy(message.data() + 2, &reserved, 2);
  std::memcpy(message.data() + 4, &payload_size, 4);
  std::copy(payload.begin(), payload.end(), message.begin() + frame_header_bytes);
  return message;
}

std::vector<std::byte> make_message(frame_type type, std::span<const std::byte> payload) {
  return make_message(static_cast<std::uint8_t>(type), payload);
}

std::span<const std::byte> text_bytes(std::string_view text) { return std::as_bytes(std::span(text)); }

// sendmsg without any of send_frame's checks, with room for up to 64 descriptors.
ssize_t raw_send(int socket, std::span<const std::byte> message, std::span<const int> fds = {}) {
  iovec part{const_cast<std::byte*>(message.data()), message.size()};
  msghdr header{};
  header.msg_iov = &part;
  header.msg_iovlen = 1;
  union {
    cmsghdr align;
    unsigned char bytes[CMSG_SPACE(sizeof(int) * 64)];
  } control{};
  if (!fds.empty()) {
    header.msg_control = control.bytes;
    header.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
    cmsghdr* rights = CMSG_FIRSTHDR(&header);
    rights->cmsg_level = SOL_SOCKET;
    rights->cmsg_type = SCM_RIGHTS;
    rights->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
    std::memcpy(CMSG_DATA(rights), fds.data(), sizeof(int) * fds.size());
  }
  return ::sendmsg(socket, &header, MSG_NOSIGNAL | MSG_DONTWAIT);
}

bool wait_for(int fd, short events, int timeout_ms) {
  pollfd entry{fd, events, 0};
  int ready;
  do {
    ready = ::poll(&entry, 1, timeout_ms);
  } while (ready < 0 && errno == EINTR);
  return ready > 0;
}

// Kills and reaps the forked child on every path out of the test; reaps only its own pid.
struct child_guard {
  pid_t pid;
  bool reaped = false;
  explicit child_guard(pid_t child) : pid(child) {}
  child_guard(const child_guard&) = delete;
  child_guard& operator=(const child_guard&) = delete;
  int reap() {
    int status = 0;
    pid_t done;
    do {
      done = ::waitpid(pid, &status, 0);
    } while (done < 0 && errno == EINTR);
    reaped = true;
    return status;
  }
  ~child_guard() {
    if (!reaped) {
      ::kill(pid, SIGKILL);
      reap();
    }
  }
};

}  // namespace

BOOST_AUTO_TEST_SUITE(channel)

// ---------------------------------------------------------------------------------------
// make_channel_pair

BOOST_AUTO_TEST_CASE(pair_is_nonblocking_cloexec_seqpacket) {
  channel_pair pair;
  for (int fd : {pair.master, pair.worker}) {
    int type = 0;
    socklen_t length = sizeof type;
    BOOST_TEST(::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &length) == 0);
    BOOST_TEST(type == SOCK_SEQPACKET);
    BOOST_TEST((::fcntl(fd, F_GETFL) & O_NONBLOCK) != 0);
    BOOST_TEST(has_cloexec(fd));
  }
}

// ---------------------------------------------------------------------------------------
// decode_frame: round trips

BOOST_AUTO_TEST_CASE(decode_handoff_and_handback) {
  const std::array<std::uint32_t, 3> indices{7, 0, 4000000000u};
  for (auto type : {frame_type::handoff, frame_type::handback}) {
    const auto message = make_message(type, as_payload(indices));
    auto decoded = decode_frame(message, indices.size());
    BOOST_TEST_REQUIRE(decoded.has_value());
    BOOST_TEST((decoded->type == type));
    BOOST_TEST(decoded->payload.size() == indices.size() * 4);
    BOOST_TEST(decoded->payload.data() == message.data() + frame_header_bytes);
    for (std::size_t i = 0; i < indices.size(); ++i) BOOST_TEST(read_listener_index(decoded->payload, i) == indices[i]);
  }
}

BOOST_AUTO_TEST_CASE(decode_progress) {
  const progress_counters sent{12, 5, 99};
  const auto message = make_message(frame_type::progress, as_payload(sent));
  auto decoded = decode_frame(message, 0);
  BOOST_TEST_REQUIRE(decoded.has_value());
  BOOST_TEST((decoded->type == frame_type::progress));
  auto counters = read_progress(decoded->payload);
  BOOST_TEST_REQUIRE(counters.has_value());
  BOOST_TEST(counters->received == 12u);
  BOOST_TEST(counters->closed == 5u);
  BOOST_TEST(counters->requests == 99u);
}

BOOST_AUTO_TEST_CASE(decode_control) {
  const std::string_view text = R"({"type":"hello","worker":3})";
  const auto message = make_message(frame_type::control, text_bytes(text));
  auto decoded = decode_frame(message, 0);
  BOOST_TEST_REQUIRE(decoded.has_value());
  BOOST_TEST((decoded->type == frame_type::control));
  BOOST_TEST(std::string_view(reinterpret_cast<const char*>(decoded->payload.data()), decoded->payload.size()) == text);
}

BOOST_AUTO_TEST_CASE(decode_largest_frame) {
  const std::vector<std::byte> payload(max_frame_bytes - frame_header_bytes, std::byte{'x'});
  const auto message = make_message(frame_type::control, payload);
  BOOST_TEST(decode_frame(message, 0).has_value());
}

// ---------------------------------------------------------------------------------------
// decode_frame: every rejection

namespace {
void check_malformed(std::span<const std::byte> message, std::size_t fd_count) {
  auto decoded = decode_frame(message, fd_count);
  BOOST_TEST_REQUIRE(decoded.has_error());
  BOOST_TEST(decoded.error() == make_error_code(errc::frame_malformed));
}
}  // namespace

BOOST_AUTO_TEST_CASE(decode_rejects_short_header) {
  const auto message = make_message(frame_type::control, text_bytes("{}"));
  check_malformed({}, 0);
  for (std::size_t size = 1; size < frame_header_bytes; ++size) check_malformed(std::span(message).first(size), 0);
}

BOOST_AUTO_TEST_CASE(decode_rejects_bad_version) {
  for (std::uint8_t version : {0, 2, 255}) check_malformed(make_message(3, text_bytes("{}"), version), 0);
}

BOOST_AUTO_TEST_CASE(decode_rejects_bad_reserved) {
  for (std::uint16_t reserved : {1, 0x100, 0xffff}) check_malformed(make_message(3, text_bytes("{}"), 1, reserved), 0);
}

BOOST_AUTO_TEST_CASE(decode_rejects_size_mismatch) {
  auto message = make_message(frame_type::control, text_bytes("{}"));
  message.push_back(std::byte{0});  // one byte more than payload_size says
  check_malformed(message, 0);
  message.pop_back();
  message.pop_back();  // one byte fewer
  check_malformed(message, 0);
}

BOOST_AUTO_TEST_CASE(decode_rejects_oversized_message) {
  const std::vector<std::byte> payload(max_frame_bytes - frame_header_bytes + 1, std::byte{'x'});
  check_malformed(make_message(frame_type::control, payload), 0);
}

BOOST_AUTO_TEST_CASE(decode_rejects_unknown_type) {
  for (std::uint8_t type : {0, 5, 255}) check_malformed(make_message(type, text_bytes("{}")), 0);
}

BOOST_AUTO_TEST_CASE(decode_rejects_progress_of_wrong_size) {
  const std::vector<std::byte> small(sizeof(progress_counters) - 1);
  const std::vector<std::byte> large(sizeof(progress_counters) + 1);
  check_malformed(make_message(frame_type::progress, small), 0);
  check_malformed(make_message(frame_type::progress, large), 0);
  check_malformed(make_message(frame_type::progress, {}), 0);
}

BOOST_AUTO_TEST_CASE(decode_rejects_entries_not_matching_descriptors) {
  const std::array<std::uint32_t, 2> two{1, 2};
  for (auto type : {frame_type::handoff, frame_type::handback}) {
    check_malformed(make_message(type, as_payload(two)), 1);
    check_malformed(make_message(type, as_payload(two)), 3);
    check_malformed(make_message(type, {}), 0);                 // no descriptor at all
    check_malformed(make_message(type, text_bytes("abc")), 1);  // not a whole entry
    const std::vector<std::uint32_t> too_many(max_fds_per_frame + 1, 0);
    check_malformed(make_message(type, as_payload(too_many)), too_many.size());
  }
}

BOOST_AUTO_TEST_CASE(decode_rejects_descriptors_on_types_that_take_none) {
  const progress_counters counters{};
  check_malformed(make_message(frame_type::progress, as_payload(counters)), 1);
  check_malformed(make_message(frame_type::control, text_bytes("{}")), 1);
}

BOOST_AUTO_TEST_CASE(decode_rejects_empty_control) { check_malformed(make_message(frame_type::control, {}), 0); }

BOOST_AUTO_TEST_CASE(read_progress_rejects_wrong_size) {
  const std::vector<std::byte> small(sizeof(progress_counters) - 1);
  auto counters = read_progress(small);
  BOOST_TEST_REQUIRE(counters.has_error());
  BOOST_TEST(counters.error() == make_error_code(errc::frame_malformed));
}

BOOST_AUTO_TEST_CASE(read_listener_index_needs_no_alignment) {
  std::array<std::byte, 9> bytes{};
  const std::uint32_t value = 0xdeadbeef;
  std::memcpy(bytes.data() + 1, &value, 4);
  std::memcpy(bytes.data() + 5, &value, 4);
  const auto unaligned = std::span<const std::byte>(bytes).subspan(1);
  BOOST_TEST(read_listener_index(unaligned, 0) == value);
  BOOST_TEST(read_listener_index(unaligned, 1) == value);
}

// ---------------------------------------------------------------------------------------
// send_frame / receive_frame in one process

BOOST_AUTO_TEST_CASE(send_receive_progress_and_control) {
  channel_pair pair;
  std::vector<std::byte> buffer(max_frame_bytes);
  received_frame frame;

  const progress_counters sent{3, 2, 1};
  BOOST_TEST(!send_frame(pair.worker, frame_type::progress, as_payload(sent)));
  BOOST_TEST_REQUIRE(!receive_frame(pair.master, buffer, frame));
  BOOST_TEST((frame.type == frame_type::progress));
  BOOST_TEST(frame.fd_count == 0u);
  auto counters = read_progress(frame.payload);
  BOOST_TEST_REQUIRE(counters.has_value());
  BOOST_TEST(counters->received == 3u);
  BOOST_TEST(counters->closed == 2u);
  BOOST_TEST(counters->requests == 1u);

  const std::string_view text = R"({"type":"stop"})";
  BOOST_TEST(!send_frame(pair.master, frame_type::control, text_bytes(text)));
  BOOST_TEST_REQUIRE(!receive_frame(pair.worker, buffer, frame));
  BOOST_TEST((frame.type == frame_type::control));
  BOOST_TEST(frame.payload.data() == buffer.data() + frame_header_bytes);
  BOOST_TEST(std::string_view(reinterpret_cast<const char*>(frame.payload.data()), frame.payload.size()) == text);
}

BOOST_AUTO_TEST_CASE(send_receive_largest_control) {
  channel_pair pair;
  std::vector<std::byte> buffer(max_frame_bytes);
  std::vector<std::byte> payload(max_frame_bytes - frame_header_bytes, std::byte{'z'});
  payload.front() = std::byte{'{'};
  BOOST_TEST_REQUIRE(!send_frame(pair.master, frame_type::control, payload));
  received_frame frame;
  BOOST_TEST_REQUIRE(!receive_frame(pair.worker, buffer, frame));
  BOOST_TEST(frame.payload.size() == payload.size());
  BOOST_TEST(std::equal(payload.begin(), payload.end(), frame.payload.begin(), frame.payload.end()));
}

namespace {
void check_descriptor_round_trip(frame_type type, std::size_t count) {
  channel_pair pair;
  std::vector<test_pipe> pipes(count);
  std::vector<int> fds;
  std::vector<std::uint32_t> indices;
  for (std::size_t i = 0; i < count; ++i) {
    fds.push_back(i % 2 == 0 ? pipes[i].read_end : pipes[i].write_end);
    indices.push_back(static_cast<std::uint32_t>(100 + i));
  }
  const std::size_t before = count_open_fds();
  BOOST_TEST_REQUIRE(!send_frame(pair.master, type, as_payload(indices), fds));

  std::vector<std::byte> buffer(max_frame_bytes);
  received_frame frame;
  BOOST_TEST_REQUIRE(!receive_frame(pair.worker, buffer, frame));
  BOOST_TEST((frame.type == type));
  BOOST_TEST_REQUIRE(frame.fd_count == count);
  BOOST_TEST(count_open_fds() == before + count);
  for (std::size_t i = 0; i < count; ++i) {
    BOOST_TEST(frame.fds[i] != fds[i]);                // a new descriptor...
    BOOST_TEST(same_open_file(frame.fds[i], fds[i]));  // ...for the same open file
    BOOST_TEST(has_cloexec(frame.fds[i]));
    BOOST_TEST(read_listener_index(frame.payload, i) == indices[i]);
  }
  if (count > 1) {  // the same open file description, not only the same inode: fds[1] is a write end
    const char sent = 'k';
    char got = 0;
    BOOST_TEST(::write(frame.fds[1], &sent, 1) == 1);
    BOOST_TEST(::read(pipes[1].read_end, &got, 1) == 1);
    BOOST_TEST(got == sent);
  }
  frame.close_descriptors();
  BOOST_TEST(frame.fd_count == 0u);
  BOOST_TEST(count_open_fds() == before);
}
}  // namespace

BOOST_AUTO_TEST_CASE(send_receive_one_descriptor) { check_descriptor_round_trip(frame_type::handoff, 1); }

BOOST_AUTO_TEST_CASE(send_receive_max_descriptors) {
  check_descriptor_round_trip(frame_type::handoff, max_fds_per_frame);
  check_descriptor_round_trip(frame_type::handback, max_fds_per_frame);
}

BOOST_AUTO_TEST_CASE(receive_would_block_when_empty) {
  channel_pair pair;
  std::vector<std::byte> buffer(max_frame_bytes);
  received_frame frame;
  BOOST_TEST(receive_frame(pair.worker, buffer, frame) == asio::error::would_block);
  BOOST_TEST(frame.fd_count == 0u);
}

BOOST_AUTO_TEST_CASE(send_would_block_when_buffer_full) {
  channel_pair pair;
  std::vector<std::byte> payload(60000, std::byte{' '});
  boost::system::error_code ec;
  int sent = 0;
  for (; sent < 10000; ++sent) {
    ec = send_frame(pair.master, frame_type::control, payload);
    if (ec) break;
  }
  BOOST_TEST(ec == asio::error::would_block);
  BOOST_TEST(sent > 0);

  // Nothing of the refused frame went out: exactly `sent` frames are queued, and draining
  // one makes room again.
  std::vector<std::byte> buffer(max_frame_bytes);
  received_frame frame;
  BOOST_TEST_REQUIRE(!receive_frame(pair.worker, buffer, frame));
  BOOST_TEST(!send_frame(pair.master, frame_type::control, payload));
  int received = 1;
  while (!receive_frame(pair.worker, buffer, frame)) ++received;
  BOOST_TEST(received == sent + 1);
}

BOOST_AUTO_TEST_CASE(receive_reports_closed_after_pending_frames) {
  channel_pair pair;
  const progress_counters counters{1, 1, 1};
  BOOST_TEST_REQUIRE(!send_frame(pair.worker, frame_type::progress, as_payload(counters)));
  pair.close_worker();
  std::vector<std::byte> buffer(max_frame_bytes);
  received_frame frame;
  BOOST_TEST(!receive_frame(pair.master, buffer, frame));  // what was sent before the close
  BOOST_TEST(receive_frame(pair.master, buffer, frame) == make_error_code(errc::channel_closed));
  BOOST_TEST(receive_frame(pair.master, buffer, frame) == make_error_code(errc::channel_closed));
}

BOOST_AUTO_TEST_CASE(send_reports_broken_pipe_after_peer_closes) {
  channel_pair pair;
  pair.close_worker();
  const auto ec = send_frame(pair.master, frame_type::control, text_bytes("{}"));
  BOOST_TEST(ec == asio::error::broken_pipe);  // and no SIGPIPE: MSG_NOSIGNAL
}

BOOST_AUTO_TEST_CASE(send_reports_connection_reset_when_peer_closed_with_unread_data) {
  channel_pair pair;
  BOOST_TEST_REQUIRE(!send_frame(pair.master, frame_type::control, text_bytes("{}")));
  pair.close_worker();  // closed with our frame unread
  const auto ec = send_frame(pair.master, frame_type::control, text_bytes("{}"));
  BOOST_TEST((ec == asio::error::broken_pipe || ec == asio::error::connection_reset));
}

BOOST_AUTO_TEST_CASE(send_and_receive_report_errno) {
  channel_pair pair;
  const int closed = pair.master;
  pair.close_master();
  std::vector<std::byte> buffer(max_frame_bytes);
  received_frame frame;
  BOOST_TEST(send_frame(closed, frame_type::control, text_bytes("{}")) == asio::error::bad_descriptor);
  BOOST_TEST(receive_frame(closed, buffer, frame) == asio::error::bad_descriptor);
  // Not a socket at all.
  test_pipe pipe;
  BOOST_TEST(send_frame(pipe.write_end, frame_type::control, text_bytes("{}")) == asio::error::not_socket);
  BOOST_TEST(receive_frame(pipe.read_end, buffer, frame) == asio::error::not_socket);
}

BOOST_AUTO_TEST_CASE(send_refuses_malformed_frames) {
  channel_pair pair;
  test_pipe pipe;
  const std::vector<int> too_many_fds(max_fds_per_frame + 1, pipe.read_end);
  const std::vector<std::uint32_t> too_many_indices(max_fds_per_frame + 1, 0);
  const std::array<std::uint32_t, 2> two_indices{0, 1};
  const std::array<int, 1> one_fd{pipe.read_end};
  const std::vector<std::byte> too_large(max_frame_bytes - frame_header_bytes + 1, std::byte{'x'});
  const progress_counters counters{};
  const auto malformed = make_error_code(errc::frame_malformed);

  BOOST_TEST(send_frame(pair.master, frame_type::handoff, as_payload(too_many_indices), too_many_fds) == malformed);
  BOOST_TEST(send_frame(pair.master, frame_type::control, too_large) == malformed);
  BOOST_TEST(send_frame(pair.master, frame_type::control, {}) == malformed);
  BOOST_TEST(send_frame(pair.master, frame_type::control, text_bytes("{}"), one_fd) == malformed);
  BOOST_TEST(send_frame(pair.master, frame_type::progress, as_payload(counters), one_fd) == malformed);
  BOOST_TEST(send_frame(pair.master, frame_type::progress, text_bytes("{}")) == malformed);
  BOOST_TEST(send_frame(pair.master, frame_type::handoff, as_payload(two_indices), one_fd) == malformed);
  BOOST_TEST(send_frame(pair.master, frame_type::handback, {}, {}) == malformed);
  BOOST_TEST(send_frame(pair.master, static_cast<frame_type>(9), text_bytes("{}")) == malformed);

  std::vector<std::byte> buffer(max_frame_bytes);
  received_frame frame;
  BOOST_TEST(receive_frame(pair.worker, buffer, frame) == asio::error::would_block);  // nothing went out
}

BOOST_AUTO_TEST_CASE(receive_refuses_small_buffer) {
  channel_pair pair;
  BOOST_TEST_REQUIRE(!send_frame(pair.master, frame_type::control, text_bytes("{}")));
  std::vector<std::byte> buffer(max_frame_bytes - 1);
  received_frame frame;
  BOOST_TEST(receive_frame(pair.worker, buffer, frame) == boost::system::errc::invalid_argument);
  buffer.resize(max_frame_bytes);
  BOOST_TEST(!receive_frame(pair.worker, buffer, frame));  // nothing was consumed
}

// ---------------------------------------------------------------------------------------
// receive_frame: hostile or broken peers never leak a descriptor

BOOST_AUTO_TEST_CASE(receive_too_many_descriptors_is_truncated_without_leak) {
  channel_pair pair;
  test_pipe pipe;
  std::vector<std::byte> buffer(max_frame_bytes);
  for (std::size_t count : {max_fds_per_frame + 1, std::size_t{64}}) {
    const std::vector<int> fds(count, pipe.write_end);
    const std::vector<std::uint32_t> indices(count, 0);
    const auto message = make_message(frame_type::handoff, as_payload(indices));
    const std::size_t before = count_open_fds();
    BOOST_TEST_REQUIRE(raw_send(pair.master, message, fds) == static_cast<ssize_t>(message.size()));
    received_frame frame;
    BOOST_TEST(receive_frame(pair.worker, buffer, frame) == make_error_code(errc::frame_truncated));
    BOOST_TEST(frame.fd_count == 0u);
    BOOST_TEST(count_open_fds() == before);
  }
  // The only other holder of the write end is gone: the pipe sees EOF.
  ::close(pipe.write_end);
  pipe.write_end = -1;
  char byte;
  BOOST_TEST(::read(pipe.read_end, &byte, 1) == 0);
}

BOOST_AUTO_TEST_CASE(receive_oversized_message_is_truncated_without_leak) {
  channel_pair pair;
  test_pipe pipe;
  const std::vector<std::byte> payload(max_frame_bytes, std::byte{'x'});  // + header > max
  const auto message = make_message(frame_type::control, payload);
  const std::array<int, 2> fds{pipe.read_end, pipe.write_end};
  const std::size_t before = count_open_fds();
  BOOST_TEST_REQUIRE(raw_send(pair.master, message, fds) == static_cast<ssize_t>(message.size()));
  std::vector<std::byte> buffer(max_frame_bytes * 2);  // larger buffers still stop at max_frame_bytes
  received_frame frame;
  BOOST_TEST(receive_frame(pair.worker, buffer, frame) == make_error_code(errc::frame_truncated));
  BOOST_TEST(count_open_fds() == before);
  // The rest of the message was discarded: the channel is still in step.
  BOOST_TEST(!send_frame(pair.master, frame_type::control, text_bytes("{}")));
  BOOST_TEST(!receive_frame(pair.worker, buffer, frame));
  BOOST_TEST(frame.payload.size() == 2u);
}

BOOST_AUTO_TEST_CASE(receive_descriptors_on_wrong_type_are_closed) {
  channel_pair pair;
  test_pipe pipe;
  const std::array<int, 2> fds{pipe.read_end, pipe.write_end};
  const progress_counters counters{};
  std::vector<std::byte> buffer(max_frame_bytes);
  for (const auto& message : {make_message(frame_type::progress, as_payload(counters)),
                              make_message(frame_type::control, text_bytes("{}"))}) {
    const std::size_t before = count_open_fds();
    BOOST_TEST_REQUIRE(raw_send(pair.master, message, fds) == static_cast<ssize_t>(message.size()));
    received_frame frame;
    BOOST_TEST(receive_frame(pair.worker, buffer, frame) == make_error_code(errc::frame_malformed));
    BOOST_TEST(frame.fd_count == 0u);
    BOOST_TEST(count_open_fds() == before);
  }
}

BOOST_AUTO_TEST_CASE(receive_entries_not_matching_descriptors_are_closed) {
  channel_pair pair;
  test_pipe pipe;
  const std::array<int, 2> fds{pipe.read_end, pipe.write_end};
  const std::array<std::uint32_t, 3> three{0, 1, 2};
  const std::array<std::uint32_t, 1> one{0};
  std::vector<std::byte> buffer(max_frame_bytes);
  for (const auto& message :
       {make_message(frame_type::handoff, as_payload(three)), make_message(frame_type::handback, as_payload(one)),
        make_message(7, as_payload(std::span(three).first(2)))}) {
    const std::size_t before = count_open_fds();
    BOOST_TEST_REQUIRE(raw_send(pair.master, message, fds) == static_cast<ssize_t>(message.size()));
    received_frame frame;
    BOOST_TEST(receive_frame(pair.worker, buffer, frame) == make_error_code(errc::frame_malformed));
    BOOST_TEST(count_open_fds() == before);
  }
}

// Lowers the soft RLIMIT_NOFILE to the lowest free descriptor number and fills every
// free slot below it but `free_slots`; restores both on scope exit. (Nothing in between
// may open a descriptor: /proc/self/fd cannot be listed.)
class descriptor_table_full {
 public:
  explicit descriptor_table_full(std::size_t free_slots) {
    BOOST_TEST_REQUIRE(::getrlimit(RLIMIT_NOFILE, &saved_) == 0);
    int highest = 2;
    for (const auto& entry : std::filesystem::directory_iterator("/proc/self/fd"))
      highest = std::max(highest, std::stoi(entry.path().filename().string()));
    rlimit low = saved_;
    low.rlim_cur = static_cast<rlim_t>(highest) + 1 + free_slots;
    BOOST_TEST_REQUIRE(::setrlimit(RLIMIT_NOFILE, &low) == 0);
    for (int fd; (fd = ::fcntl(0, F_DUPFD_CLOEXEC, 0)) >= 0;) fillers_.push_back(fd);
    BOOST_TEST_REQUIRE(errno == EMFILE);
    BOOST_TEST_REQUIRE(fillers_.size() >= free_slots);
    for (std::size_t i = 0; i < free_slots; ++i) {
      ::close(fillers_.back());
      fillers_.pop_back();
    }
  }
  ~descriptor_table_full() {
    for (int fd : fillers_) ::close(fd);
    ::setrlimit(RLIMIT_NOFILE, &saved_);
  }
  descriptor_table_full(const descriptor_table_full&) = delete;
  descriptor_table_full& operator=(const descriptor_table_full&) = delete;

  /// How many descriptors can still be made (each is made and closed again).
  std::size_t free_slots() const {
    std::vector<int> probes;
    for (int fd; (fd = ::fcntl(0, F_DUPFD_CLOEXEC, 0)) >= 0;) probes.push_back(fd);
    for (int fd : probes) ::close(fd);
    return probes.size();
  }

 private:
  rlimit saved_{};
  std::vector<int> fillers_;
};

BOOST_AUTO_TEST_CASE(receive_without_free_descriptors_reports_lost_handoff) {
  channel_pair pair;
  test_pipe pipe;
  std::vector<std::byte> buffer(max_frame_bytes);
  const std::array<int, 3> fds{pipe.write_end, pipe.write_end, pipe.write_end};
  const std::array<std::uint32_t, 3> indices{0, 1, 0};
  const std::size_t before = count_open_fds();
  // With no free slot the kernel installs none of the three; with one, it installs one,
  // which receive_frame must close.
  for (std::size_t free_slots : {std::size_t{0}, std::size_t{1}}) {
    BOOST_TEST_REQUIRE(!send_frame(pair.master, frame_type::handback, as_payload(indices), fds));
    BOOST_TEST_REQUIRE(!send_frame(pair.master, frame_type::handoff, as_payload(indices), fds));
    BOOST_TEST_REQUIRE(!send_frame(pair.master, frame_type::control, text_bytes("{}")));
    descriptor_table_full full(free_slots);
    for (frame_type expected : {frame_type::handback, frame_type::handoff}) {
      received_frame frame;
      BOOST_TEST(receive_frame(pair.worker, buffer, frame) == make_error_code(errc::frame_truncated));
      BOOST_TEST(frame.fd_count == 0u);
      BOOST_TEST((frame.type == expected));
      BOOST_TEST(frame.lost_fds == 3u);
    }
    // A frame that carries no descriptors arrives as usual.
    received_frame frame;
    BOOST_TEST(!receive_frame(pair.worker, buffer, frame));
    BOOST_TEST(frame.lost_fds == 0u);
    BOOST_TEST(full.free_slots() == free_slots);
  }
  BOOST_TEST(count_open_fds() == before);
  // Nobody holds a copy of the write end any more: the pipe sees EOF.
  ::close(pipe.write_end);
  pipe.write_end = -1;
  char byte;
  BOOST_TEST(::read(pipe.read_end, &byte, 1) == 0);
}

BOOST_AUTO_TEST_CASE(receive_too_many_descriptors_reports_no_lost_count) {
  channel_pair pair;
  test_pipe pipe;
  std::vector<std::byte> buffer(max_frame_bytes);
  const std::vector<int> fds(max_fds_per_frame + 1, pipe.write_end);
  const std::vector<std::uint32_t> indices(max_fds_per_frame + 1, 0);
  const auto message = make_message(frame_type::handoff, as_payload(indices));
  BOOST_TEST_REQUIRE(raw_send(pair.master, message, fds) == static_cast<ssize_t>(message.size()));
  received_frame frame;
  BOOST_TEST(receive_frame(pair.worker, buffer, frame) == make_error_code(errc::frame_truncated));
  BOOST_TEST(frame.lost_fds == 0u);
}

BOOST_AUTO_TEST_CASE(receive_zero_length_message_is_malformed_not_eof) {
  channel_pair pair;
  test_pipe pipe;
  std::vector<std::byte> buffer(max_frame_bytes);
  received_frame frame;

  BOOST_TEST_REQUIRE(raw_send(pair.master, {}) == 0);
  BOOST_TEST(receive_frame(pair.worker, buffer, frame) == make_error_code(errc::frame_malformed));

  const std::array<int, 1> fds{pipe.write_end};
  const std::size_t before = count_open_fds();
  BOOST_TEST_REQUIRE(raw_send(pair.master, {}, fds) == 0);
  BOOST_TEST(receive_frame(pair.worker, buffer, frame) == make_error_code(errc::frame_malformed));
  BOOST_TEST(count_open_fds() == before);

  // A short (but non-empty) message too, then the channel goes on.
  const std::array<std::byte, 3> stub{};
  BOOST_TEST_REQUIRE(raw_send(pair.master, stub) == 3);
  BOOST_TEST(receive_frame(pair.worker, buffer, frame) == make_error_code(errc::frame_malformed));
  BOOST_TEST(!send_frame(pair.master, frame_type::control, text_bytes("{}")));
  BOOST_TEST(!receive_frame(pair.worker, buffer, frame));
}

// ---------------------------------------------------------------------------------------
// Two real processes: 100 pipes handed to a forked child in frames of up to 16.

namespace {

constexpr std::size_t pipe_count = 100;
constexpr std::size_t batch_size = 16;
constexpr int step_timeout_ms = 5000;

// The child: only non-allocating calls and _exit (it was forked from a test runner).
[[noreturn]] void run_child(int channel) {
  std::array<std::byte, max_frame_bytes> buffer;  // the child's own stack copy
  progress_counters counters;
  while (counters.received < pipe_count) {
    if (!wait_for(channel, POLLIN, step_timeout_ms)) ::_exit(2);
    received_frame frame;
    const auto ec = receive_frame(channel, buffer, frame);
    if (ec == asio::error::would_block) continue;
    if (ec) ::_exit(3);
    if (frame.type != frame_type::handoff) {
      frame.close_descriptors();
      ::_exit(4);
    }
    for (std::size_t i = 0; i < frame.fd_count; ++i) {
      const auto byte = static_cast<unsigned char>(read_listener_index(frame.payload, i));
      if (::write(frame.fds[i], &byte, 1) != 1) ::_exit(5);
    }
    counters.received += frame.fd_count;
    frame.close_descriptors();
    counters.closed = counters.received;
    for (;;) {  // the cumulative acknowledgement
      const auto sent = send_frame(channel, frame_type::progress, as_payload(counters));
      if (!sent) break;
      if (sent != asio::error::would_block || !wait_for(channel, POLLOUT, step_timeout_ms)) ::_exit(6);
    }
  }
  ::_exit(0);
}

}  // namespace

BOOST_AUTO_TEST_CASE(descriptors_between_two_processes) {
  channel_pair pair;
  const pid_t pid = ::fork();
  BOOST_TEST_REQUIRE(pid >= 0);
  if (pid == 0) {
    ::close(pair.master);
    run_child(pair.worker);
  }
  child_guard child(pid);
  pair.close_worker();

  // Created after the fork, so the child holds only what it is sent.
  std::vector<test_pipe> pipes(pipe_count);
  std::size_t sent = 0;
  while (sent < pipe_count) {
    const std::size_t count = std::min(batch_size, pipe_count - sent);
    std::array<int, batch_size> fds{};
    std::array<std::uint32_t, batch_size> indices{};
    for (std::size_t i = 0; i < count; ++i) {
      fds[i] = pipes[sent + i].write_end;
      indices[i] = static_cast<std::uint32_t>(sent + i);
    }
    const auto ec = send_frame(pair.master, frame_type::handoff, as_payload(std::span(indices).first(count)),
                               std::span(fds).first(count));
    if (ec == asio::error::would_block) {
      BOOST_TEST_REQUIRE(wait_for(pair.master, POLLOUT, step_timeout_ms), "did not finish: channel stayed full");
      continue;
    }
    BOOST_TEST_REQUIRE(!ec, ec.message());
    sent += count;
  }

  // Acknowledgements: cumulative, growing, up to every descriptor. Our copy of each write
  // end is closed only once it is acknowledged (what the master's ledger does).
  std::vector<std::byte> buffer(max_frame_bytes);
  std::uint64_t acknowledged = 0;
  std::size_t progress_frames = 0;
  while (acknowledged < pipe_count) {
    BOOST_TEST_REQUIRE(wait_for(pair.master, POLLIN, step_timeout_ms), "did not finish: no acknowledgement");
    received_frame frame;
    const auto ec = receive_frame(pair.master, buffer, frame);
    if (ec == asio::error::would_block) continue;
    BOOST_TEST_REQUIRE(!ec, ec.message());
    BOOST_TEST_REQUIRE((frame.type == frame_type::progress));
    auto counters = read_progress(frame.payload);
    BOOST_TEST_REQUIRE(counters.has_value());
    BOOST_TEST_REQUIRE(counters->received > acknowledged);
    BOOST_TEST(counters->closed == counters->received);
    BOOST_TEST(counters->requests == 0u);
    for (auto i = acknowledged; i < counters->received; ++i) {
      ::close(pipes[i].write_end);
      pipes[i].write_end = -1;
    }
    acknowledged = counters->received;
    ++progress_frames;
  }
  BOOST_TEST(acknowledged == pipe_count);
  BOOST_TEST(progress_frames == (pipe_count + batch_size - 1) / batch_size);

  const int status = child.reap();
  BOOST_TEST(WIFEXITED(status));
  BOOST_TEST(WEXITSTATUS(status) == 0);

  // Each read end got exactly its byte, then EOF: every copy of every write end is closed.
  for (std::size_t i = 0; i < pipe_count; ++i) {
    BOOST_TEST_REQUIRE(wait_for(pipes[i].read_end, POLLIN, step_timeout_ms));
    unsigned char byte = 0;
    BOOST_TEST(::read(pipes[i].read_end, &byte, 1) == 1);
    BOOST_TEST(byte == static_cast<unsigned char>(i));
    BOOST_TEST(::read(pipes[i].read_end, &byte, 1) == 0);
  }
  // The child saw the channel; after its exit the master end reads EOF.
  received_frame frame;
  BOOST_TEST(receive_frame(pair.master, buffer, frame) == make_error_code(errc::channel_closed));
}

BOOST_AUTO_TEST_SUITE_END()
