// Fuzzes what a channel peer can send: detail::decode_frame on a message that arrived with
// byte 0 % 40 descriptors (the rest of the input is the message), read_progress and
// read_listener_index on what it accepts, and decode_worker_message on the message as a
// control payload (a message that decodes must encode and decode to the same message).
#include "channel/channel.hpp"
#include "channel/worker_message.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <string>
#include <string_view>

namespace detail = prefork::detail;

namespace {

[[noreturn]] void fail(const char* what) {
  std::fprintf(stderr, "channel_frame fuzzer: %s\n", what);
  std::abort();
}

void check_frame(std::span<const std::byte> message, std::size_t fd_count) {
  auto frame = detail::decode_frame(message, fd_count);
  if (!frame) return;
  const auto& payload = frame->payload;
  if (payload.data() != message.data() + detail::frame_header_bytes ||
      payload.size() != message.size() - detail::frame_header_bytes)
    fail("the payload is not the rest of the message");
  switch (frame->type) {
    case detail::frame_type::handoff:
    case detail::frame_type::handback: {
      if (fd_count < 1 || fd_count > detail::max_fds_per_frame) fail("a handoff without a valid descriptor count");
      if (payload.size() != fd_count * sizeof(std::uint32_t)) fail("a handoff with the wrong payload size");
      std::uint64_t sum = 0;
      for (std::size_t i = 0; i < fd_count; ++i) sum += detail::read_listener_index(payload, i);
      (void)sum;
      break;
    }
    case detail::frame_type::progress:
      if (fd_count != 0 || !detail::read_progress(payload)) fail("an accepted progress frame does not read");
      break;
    case detail::frame_type::control: {
      if (fd_count != 0 || payload.empty()) fail("a control frame with descriptors or no payload");
      (void)detail::decode_worker_message(
          std::string_view(reinterpret_cast<const char*>(payload.data()), payload.size()));
      break;
    }
    default: fail("an unknown frame type was accepted");
  }
}

void check_worker_message(std::string_view text) {
  auto message = detail::decode_worker_message(text);
  if (!message) return;
  auto again = detail::decode_worker_message(detail::encode_worker_message(*message));
  if (!again) fail("an encoded worker message does not decode");
  if (again->kind != message->kind || again->open != message->open || again->served != message->served ||
      again->generation != message->generation || again->id != message->id || again->pid != message->pid)
    fail("a worker message changed in the round trip");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::size_t fd_count = data[0] % 40;
  const auto message = std::as_bytes(std::span<const std::uint8_t>(data + 1, size - 1));
  check_frame(message, fd_count);
  (void)detail::read_progress(message);
  check_worker_message(std::string_view(reinterpret_cast<const char*>(data) + 1, size - 1));
  return 0;
}
