// Fuzzes the control socket's line handling: control_line_reader splits the input (fed in
// reads of a size chosen by byte 0, with a line limit chosen by byte 1) and every line goes
// through parse_control_request; each error reply must serialize to valid JSON. The events
// are compared with a reference splitter (a line longer than the limit is one too_large).
#include "control/control_protocol.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace detail = prefork::detail;

namespace {

[[noreturn]] void fail(const char* what) {
  std::fprintf(stderr, "control_protocol fuzzer: %s\n", what);
  std::abort();
}

struct expected_event {
  bool too_large;
  std::string_view line;
};

// What the reader must report: every complete line, as a line or as too_large, and a
// too_large for an unterminated tail longer than the limit.
std::vector<expected_event> reference_split(std::string_view stream, std::size_t max_line) {
  std::vector<expected_event> events;
  for (;;) {
    const auto newline = stream.find('\n');
    if (newline == std::string_view::npos) {
      if (stream.size() > max_line) events.push_back({true, {}});
      return events;
    }
    const auto line = stream.substr(0, newline);
    events.push_back({line.size() > max_line, line.size() > max_line ? std::string_view{} : line});
    stream.remove_prefix(newline + 1);
  }
}

void check_reply(const prefork::failure& error) {
  const std::string reply = detail::serialize_error_reply(error);
  if (reply.empty() || reply.back() != '\n') fail("an error reply does not end with a newline");
  boost::system::error_code ec;
  const boost::json::value parsed = boost::json::parse(std::string_view(reply).substr(0, reply.size() - 1), ec);
  if (ec || !parsed.is_object()) fail("an error reply is not a JSON object");
}

void parse_line(std::string_view line) {
  auto request = detail::parse_control_request(line);
  if (!request) {
    check_reply(request.error());
    return;
  }
  if (request->command == detail::control_command::scale &&
      (request->workers < 1 || request->workers > detail::max_scale_workers))
    fail("scale accepted a worker count out of range");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  static constexpr std::array<std::size_t, 4> limits{16, 100, 1024, detail::max_control_line};
  const std::size_t read_size = data[0] == 0 ? 65536 : data[0];
  const std::size_t max_line = limits[data[1] % limits.size()];
  const std::string_view stream(reinterpret_cast<const char*>(data) + 2, size - 2);

  // The whole input as one request line, as a client that never sends a newline would.
  parse_line(stream);

  const auto expected = reference_split(stream, max_line);
  std::size_t next_expected = 0;
  detail::control_line_reader reader(max_line);
  std::string_view rest = stream;
  while (!rest.empty()) {
    const std::size_t chunk = std::min(read_size, rest.size());
    auto space = reader.prepare(chunk);
    if (space.size() != chunk) fail("prepare returned a span of the wrong size");
    std::memcpy(space.data(), rest.data(), chunk);
    reader.commit(chunk);
    rest.remove_prefix(chunk);
    while (auto event = reader.next()) {
      if (next_expected == expected.size()) fail("more events than lines");
      const expected_event& want = expected[next_expected++];
      const bool too_large = event->kind == detail::control_line_reader::event_kind::too_large;
      if (too_large != want.too_large) fail("line / too_large differs from the reference");
      if (!too_large) {
        if (event->line != want.line) fail("a line differs from the reference");
        parse_line(event->line);
      }
    }
    // Memory stays bounded: once next() says it needs more, at most one line is kept.
    if (reader.buffered() > max_line) fail("the reader keeps more than one line's worth of bytes");
  }
  if (next_expected != expected.size()) fail("fewer events than lines");
  return 0;
}
