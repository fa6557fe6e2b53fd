#include "control/control_protocol.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>
#include <boost/throw_exception.hpp>

#include <algorithm>
#include <array>
#include <cstring>
#include <stdexcept>
#include <utility>

namespace prefork::detail {

namespace json = boost::json;

namespace {

constexpr std::array<std::pair<std::string_view, control_command>, 12> command_names{{
    {"ping", control_command::ping},
    {"status", control_command::status},
    {"workers", control_command::workers},
    {"stats", control_command::stats},
    {"scale", control_command::scale},
    {"reload", control_command::reload},
    {"stop", control_command::stop},
    {"kill_worker", control_command::kill_worker},
    {"pause_worker", control_command::pause_worker},
    {"resume_worker", control_command::resume_worker},
    {"reopen_logs", control_command::reopen_logs},
    {"config", control_command::config},
}};

// The longest piece of a client's `cmd` echoed back in an unknown_command message.
constexpr std::size_t max_echoed_name = 64;

failure bad_request(std::string message) { return {errc::bad_request, std::move(message)}; }

// Cuts `text` to at most `limit` bytes without splitting a UTF-8 sequence, so that the
// reply stays valid UTF-8.
std::string_view truncate_utf8(std::string_view text, std::size_t limit) {
  if (text.size() <= limit) return text;
  std::size_t end = limit;
  while (end > 0 && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80) --end;
  return text.substr(0, end);
}

bool is_json_whitespace_only(std::string_view line) {
  return line.find_first_not_of(" \t\r\n") == std::string_view::npos;
}

// An integer argument, as int64, if `value` is a JSON integer that fits.
std::optional<std::int64_t> as_int64(const json::value& value) {
  if (value.is_int64()) return value.get_int64();
  if (value.is_uint64() && value.get_uint64() <= static_cast<std::uint64_t>(INT64_MAX))
    return static_cast<std::int64_t>(value.get_uint64());
  return std::nullopt;
}

result<void> read_scale(const json::object& request, control_request& out) {
  const json::value* workers = request.if_contains("workers");
  if (workers == nullptr) return bad_request("workers must be an integer ≥ 1 (missing)");
  auto count = as_int64(*workers);
  if (!count || *count < 1) return bad_request("workers must be an integer ≥ 1");
  if (static_cast<std::uint64_t>(*count) > max_scale_workers)
    return bad_request("workers must be at most " + std::to_string(max_scale_workers));
  out.workers = static_cast<std::uint64_t>(*count);
  return {};
}

// An optional boolean argument: absent leaves `out` as it is.
result<void> read_optional_bool(const json::object& request, std::string_view key, bool& out) {
  const json::value* value = request.if_contains(key);
  if (value == nullptr) return {};
  if (!value->is_bool()) return bad_request(std::string(key) + " must be a boolean");
  out = value->get_bool();
  return {};
}

result<void> read_worker_id(const json::object& request, control_request& out) {
  const json::value* id = request.if_contains("id");
  if (id == nullptr) return bad_request("id must be an integer (missing)");
  auto number = as_int64(*id);
  if (!number) return bad_request("id must be an integer");
  out.worker_id = *number;
  return {};
}

result<void> read_signal(const json::object& request, control_request& out) {
  const json::value* value = request.if_contains("signal");
  if (value == nullptr) return {};
  if (value->is_string()) {
    std::string_view name = value->get_string();
    if (name.starts_with("SIG")) name.remove_prefix(3);
    if (name == "TERM") {
      out.signal = kill_signal::term;
      return {};
    }
    if (name == "KILL") {
      out.signal = kill_signal::kill;
      return {};
    }
  }
  return bad_request("signal must be \"TERM\" or \"KILL\"");
}

result<void> read_arguments(const json::object& request, control_request& out) {
  switch (out.command) {
    case control_command::scale: return read_scale(request, out);
    case control_command::reload: return read_optional_bool(request, "wait", out.wait);
    case control_command::stop: {
      bool graceful = true;
      auto read = read_optional_bool(request, "graceful", graceful);
      if (!read) return read;
      out.stop = graceful ? stop_kind::graceful : stop_kind::fast;
      return {};
    }
    case control_command::kill_worker: {
      auto id = read_worker_id(request, out);
      if (!id) return id;
      return read_signal(request, out);
    }
    case control_command::pause_worker:
    case control_command::resume_worker: return read_worker_id(request, out);
    default: return {};
  }
}

}  // namespace

std::string_view to_string(control_command command) noexcept {
  for (const auto& [name, value] : command_names)
    if (value == command) return name;
  return "unknown";
}

result<control_request> parse_control_request(std::string_view line) {
  if (is_json_whitespace_only(line)) return failure{errc::bad_json, "empty line: expected a JSON request object"};
  boost::system::error_code ec;
  json::value document = json::parse(line, ec);
  if (ec) return failure{errc::bad_json, "invalid JSON: " + ec.message()};
  const json::object* request = document.if_object();
  if (request == nullptr) return bad_request("a request must be a JSON object");
  const json::value* cmd = request->if_contains("cmd");
  if (cmd == nullptr) return bad_request("missing \"cmd\"");
  if (!cmd->is_string()) return bad_request("\"cmd\" must be a string");

  const std::string_view name = cmd->get_string();
  auto known = std::find_if(command_names.begin(), command_names.end(),
                            [name](const auto& entry) { return entry.first == name; });
  if (known == command_names.end()) {
    std::string echoed(truncate_utf8(name, max_echoed_name));
    if (echoed.size() < name.size()) echoed += "...";
    return failure{errc::unknown_command, "unknown command \"" + echoed + "\""};
  }
  control_request parsed;
  parsed.command = known->second;
  auto arguments = read_arguments(*request, parsed);
  if (!arguments) return arguments.error();
  return parsed;
}

std::string serialize_ok_reply(const json::value& result) {
  std::string out = R"({"ok":true,"result":)";
  out += json::serialize(result);
  out += "}\n";
  return out;
}

namespace {

std::string_view reply_code(const boost::system::error_code& code) {
  // Only control codes are sent; any other code would be a bug in the master, and the
  // client still gets a code the SPEC defines.
  std::string_view name = control_code_name(code);
  return name.empty() ? control_code_name(errc::bad_request) : name;
}

}  // namespace

std::string serialize_error_reply(const failure& error) {
  std::string out = R"({"ok":false,"error":{"code":)";
  out += json::serialize(json::string_view(reply_code(error.code)));
  out += R"(,"message":)";
  out += json::serialize(json::string_view(error.message));
  out += "}}\n";
  return out;
}

// --- control_line_reader ---------------------------------------------------------------

control_line_reader::control_line_reader(std::size_t max_line) : max_line_(max_line) {}

std::span<char> control_line_reader::prepare(std::size_t size) {
  if (begin_ == end_ && buffer_.size() > 16 * 1024) {
    // A large line has gone: give its memory back, as idle connections may be many.
    std::vector<char>().swap(buffer_);
    begin_ = end_ = scanned_ = 0;
  } else if (begin_ > 0) {
    std::memmove(buffer_.data(), buffer_.data() + begin_, end_ - begin_);
    end_ -= begin_;
    scanned_ -= begin_;
    begin_ = 0;
  }
  if (buffer_.size() < end_ + size) buffer_.resize(end_ + size);
  return {buffer_.data() + end_, size};
}

void control_line_reader::commit(std::size_t written) noexcept { end_ += std::min(written, buffer_.size() - end_); }

std::optional<control_line_reader::event> control_line_reader::next() {
  for (;;) {
    const char* data = buffer_.data();
    const void* found = scanned_ < end_ ? std::memchr(data + scanned_, '\n', end_ - scanned_) : nullptr;
    if (discarding_) {
      if (found == nullptr) {
        begin_ = scanned_ = end_;  // drop what we have of the too long line
        return std::nullopt;
      }
      begin_ = scanned_ = static_cast<std::size_t>(static_cast<const char*>(found) - data) + 1;
      discarding_ = false;
      continue;
    }
    if (found == nullptr) {
      scanned_ = end_;
      if (end_ - begin_ > max_line_) {
        discarding_ = true;
        begin_ = scanned_ = end_;
        return event{event_kind::too_large, {}};
      }
      return std::nullopt;
    }
    const auto newline = static_cast<std::size_t>(static_cast<const char*>(found) - data);
    std::string_view line(data + begin_, newline - begin_);
    begin_ = scanned_ = newline + 1;
    if (line.size() > max_line_) return event{event_kind::too_large, {}};
    return event{event_kind::line, line};
  }
}

}  // namespace prefork::detail
