#include "prefork/log.hpp"

#include <boost/log/attributes/attribute_set.hpp>
#include <boost/log/core/core.hpp>
#include <boost/log/core/record.hpp>
#include <boost/log/expressions/message.hpp>
#include <boost/log/sinks/basic_sink_backend.hpp>
#include <boost/log/sinks/sync_frontend.hpp>
#include <boost/log/sources/record_ostream.hpp>
#include <boost/smart_ptr/make_shared_object.hpp>

#include <atomic>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <ctime>
#include <mutex>
#include <span>
#include <utility>

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

namespace prefork {
namespace {

namespace logging = boost::log;

// The filter and the identity are read on every call, before the state below exists, so
// they are constant-initialized atomics (a worker's app may use threads of its own).
std::atomic<log_level> threshold{log_level::info};
std::atomic<log_format> line_format{log_format::text};
std::atomic<log_role> role{log_role::master};
std::atomic<int> worker_id{-1};
std::atomic<int> own_pid{0};

boost::system::error_code last_errno() { return {errno, boost::system::system_category()}; }

/// Opens a log destination: `-` is stderr (not owned), else the file for append.
/// O_APPEND makes every write land at the end even when the master and its workers share
/// the file description or open the file separately; O_CLOEXEC keeps it out of exec'd
/// programs (a USR2 upgrade opens its own).
boost::system::error_code open_destination(const std::string& path, int& fd, bool& owned) {
  if (path == "-") {
    fd = STDERR_FILENO;
    owned = false;
    return {};
  }
  int opened;
  do {
    opened = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOCTTY, 0644);
  } while (opened < 0 && errno == EINTR);
  if (opened < 0) return last_errno();
  fd = opened;
  owned = true;
  return {};
}

/// The Boost.Log backend: writes the pre-rendered line of a record with one write(2), so
/// that lines of the master and of its workers never interleave mid-line. The synchronous
/// frontend serializes calls; there is no buffer to flush.
class fd_backend final : public logging::sinks::basic_sink_backend<logging::sinks::synchronized_feeding> {
 public:
  fd_backend() = default;
  fd_backend(const fd_backend&) = delete;
  fd_backend& operator=(const fd_backend&) = delete;
  ~fd_backend() { close_owned(); }

  void consume(const logging::record_view& record) {
    auto line = record[logging::expressions::smessage];
    if (line) write_all(line->data(), line->size());
  }

  /// Takes an already opened destination; the previous one is closed if it was ours.
  void replace(std::string path, int fd, bool owned) noexcept {
    // The same number means ours was closed behind our back and the number reused by the
    // new open (a forked worker's close_range, then reopen_logs): closing it would close
    // the new file and leave the worker writing to whatever takes the number next.
    if (owned_ && fd_ == fd) owned_ = false;
    close_owned();
    path_ = std::move(path);
    fd_ = fd;
    owned_ = owned;
  }

  const std::string& path() const noexcept { return path_; }
  int descriptor() const noexcept { return fd_; }

 private:
  void close_owned() noexcept {
    if (owned_) ::close(fd_);
    owned_ = false;
  }

  void write_all(const char* data, std::size_t size) noexcept {
    while (size > 0) {
      ssize_t written = ::write(fd_, data, size);
      if (written > 0) {
        data += written;
        size -= static_cast<std::size_t>(written);
        continue;
      }
      if (written < 0 && errno == EINTR) continue;
      // A stderr someone made non-blocking: wait a little for room rather than drop.
      if (written < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        pollfd waiting{fd_, POLLOUT, 0};
        if (::poll(&waiting, 1, 1000) > 0) continue;
      }
      return;  // nowhere left to report it
    }
  }

  std::string path_ = "-";
  int fd_ = STDERR_FILENO;
  bool owned_ = false;
};

using sink_type = logging::sinks::synchronous_sink<fd_backend>;

/// The one sink, created on first use (stderr) and never destroyed: lines logged from
/// static destructors must still find the core alive, which the shared_ptr guarantees.
struct log_state {
  boost::shared_ptr<logging::core> core = logging::core::get();
  boost::shared_ptr<sink_type> sink = boost::make_shared<sink_type>();
  const logging::attribute_set no_source_attributes;  // the line carries everything
  std::mutex configure_mutex;                         // init_logging and reopen_logs, against each other

  log_state() { core->add_sink(sink); }
};

log_state& state() {
  static log_state* instance = new log_state();
  return *instance;
}

int current_pid() noexcept {
  int pid = own_pid.load(std::memory_order_relaxed);
  if (pid == 0) {
    pid = static_cast<int>(::getpid());
    own_pid.store(pid, std::memory_order_relaxed);
  }
  return pid;
}

std::string_view level_name(log_level level) noexcept {
  switch (level) {
    case log_level::trace: return "trace";
    case log_level::debug: return "debug";
    case log_level::info: return "info";
    case log_level::warning: return "warning";
    case log_level::error: return "error";
    case log_level::fatal: return "fatal";
  }
  return "unknown";
}

template <typename Number>
void append_number(std::string& out, Number value) {
  char digits[32];
  auto result = std::to_chars(digits, digits + sizeof digits, value);
  out.append(digits, result.ptr);
}

void append_padded(std::string& out, int value, int width) {
  char digits[12];
  auto result = std::to_chars(digits, digits + sizeof digits, value);
  for (auto length = result.ptr - digits; length < width; ++length) out.push_back('0');
  out.append(digits, result.ptr);
}

/// RFC 3339 UTC with milliseconds: 2026-11-26T16:02:23.123Z.
void append_timestamp(std::string& out) {
  timespec now{};
  ::clock_gettime(CLOCK_REALTIME, &now);
  std::tm utc{};
  ::gmtime_r(&now.tv_sec, &utc);
  append_padded(out, utc.tm_year + 1900, 4);
  out.push_back('-');
  append_padded(out, utc.tm_mon + 1, 2);
  out.push_back('-');
  append_padded(out, utc.tm_mday, 2);
  out.push_back('T');
  append_padded(out, utc.tm_hour, 2);
  out.push_back(':');
  append_padded(out, utc.tm_min, 2);
  out.push_back(':');
  append_padded(out, utc.tm_sec, 2);
  out.push_back('.');
  append_padded(out, static_cast<int>(now.tv_nsec / 1000000), 3);
  out.push_back('Z');
}

void append_control_escape(std::string& out, unsigned char c) {
  switch (c) {
    case '\n': out += "\\n"; return;
    case '\r': out += "\\r"; return;
    case '\t': out += "\\t"; return;
    case '\b': out += "\\b"; return;
    case '\f': out += "\\f"; return;
    default: {
      static constexpr char hex[] = "0123456789abcdef";
      out += "\\u00";
      out.push_back(hex[c >> 4]);
      out.push_back(hex[c & 0xf]);
    }
  }
}

/// Length of the valid UTF-8 sequence starting at text[i], or 0 if it is not one
/// (overlong forms, surrogates and code points past U+10FFFF are invalid).
std::size_t utf8_sequence_length(std::string_view text, std::size_t i) noexcept {
  auto byte = [&](std::size_t k) { return static_cast<unsigned char>(text[k]); };
  unsigned char lead = byte(i);
  std::size_t length;
  unsigned char low = 0x80, high = 0xbf;  // allowed range of the second byte
  if (lead >= 0xc2 && lead <= 0xdf) {
    length = 2;
  } else if (lead >= 0xe0 && lead <= 0xef) {
    length = 3;
    if (lead == 0xe0) low = 0xa0;
    if (lead == 0xed) high = 0x9f;
  } else if (lead >= 0xf0 && lead <= 0xf4) {
    length = 4;
    if (lead == 0xf0) low = 0x90;
    if (lead == 0xf4) high = 0x8f;
  } else {
    return 0;
  }
  if (i + length > text.size()) return 0;
  if (byte(i + 1) < low || byte(i + 1) > high) return 0;
  for (std::size_t k = 2; k < length; ++k) {
    if ((byte(i + k) & 0xc0) != 0x80) return 0;
  }
  return length;
}

/// A JSON string literal. Invalid UTF-8 becomes U+FFFD so that every line stays valid JSON.
void append_json_string(std::string& out, std::string_view text) {
  out.push_back('"');
  for (std::size_t i = 0; i < text.size();) {
    auto c = static_cast<unsigned char>(text[i]);
    if (c < 0x80) {
      if (c == '"' || c == '\\') {
        out.push_back('\\');
        out.push_back(static_cast<char>(c));
      } else if (c < 0x20 || c == 0x7f) {
        append_control_escape(out, c);
      } else {
        out.push_back(static_cast<char>(c));
      }
      ++i;
      continue;
    }
    std::size_t length = utf8_sequence_length(text, i);
    if (length == 0) {
      out += "\\ufffd";
      ++i;
    } else {
      out.append(text.substr(i, length));
      i += length;
    }
  }
  out.push_back('"');
}

/// A message in a text line: control characters escaped so that a line stays one line.
void append_text_message(std::string& out, std::string_view text) {
  for (char ch : text) {
    auto c = static_cast<unsigned char>(ch);
    if (c < 0x20 || c == 0x7f) {
      append_control_escape(out, c);
    } else {
      out.push_back(ch);
    }
  }
}

/// A string value in a text line: bare when it is one plain word, else quoted and escaped
/// so that `key=value` pairs can be split back.
void append_text_string(std::string& out, std::string_view text) {
  bool plain = !text.empty();
  for (char ch : text) {
    auto c = static_cast<unsigned char>(ch);
    if (c <= 0x20 || c == 0x7f || c == '"' || c == '=' || c == '\\') {
      plain = false;
      break;
    }
  }
  if (plain) {
    out.append(text);
    return;
  }
  out.push_back('"');
  for (char ch : text) {
    auto c = static_cast<unsigned char>(ch);
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(ch);
    } else if (c < 0x20 || c == 0x7f) {
      append_control_escape(out, c);
    } else {
      out.push_back(ch);
    }
  }
  out.push_back('"');
}

enum class render_style { text, json };

void append_value(std::string& out, const log_field::value_type& value, render_style style) {
  std::visit(
      [&](const auto& v) {
        using type = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<type, std::string_view>) {
          if (style == render_style::json) {
            append_json_string(out, v);
          } else {
            append_text_string(out, v);
          }
        } else if constexpr (std::is_same_v<type, bool>) {
          out += v ? "true" : "false";
        } else if constexpr (std::is_same_v<type, double>) {
          if (std::isfinite(v)) {
            append_number(out, v);
          } else if (style == render_style::json) {
            out += "null";  // JSON has no NaN or infinity
          } else {
            out += std::isnan(v) ? "nan" : (v > 0 ? "inf" : "-inf");
          }
        } else {
          append_number(out, v);
        }
      },
      value);
}

bool is_line_key(std::string_view key, log_role line_role) noexcept {
  return key == "ts" || key == "level" || key == "role" || key == "pid" || key == "msg" ||
         (key == "worker" && line_role == log_role::worker);
}

// 2026-11-26T16:02:23.123Z info    worker.3[1235] message key=value key2="two words"
void render_text(std::string& out, log_level level, std::string_view message, std::span<const log_field> fields,
                 log_role line_role, int id, int pid) {
  append_timestamp(out);
  out.push_back(' ');
  auto name = level_name(level);
  out.append(name);
  out.append(name.size() < 7 ? 8 - name.size() : 1, ' ');  // "warning" is the widest
  if (line_role == log_role::master) {
    out += "master[";
  } else {
    out += "worker.";
    append_number(out, id);
    out.push_back('[');
  }
  append_number(out, pid);
  out += "] ";
  append_text_message(out, message);
  for (const auto& field : fields) {
    out.push_back(' ');
    out.append(field.key);
    out.push_back('=');
    append_value(out, field.value, render_style::text);
  }
  out.push_back('\n');
}

// {"ts":"...","level":"info","role":"worker","pid":1235,"worker":3,"msg":"...",...}
void render_json(std::string& out, log_level level, std::string_view message, std::span<const log_field> fields,
                 log_role line_role, int id, int pid) {
  out += "{\"ts\":\"";
  append_timestamp(out);
  out += "\",\"level\":\"";
  out.append(level_name(level));
  out += line_role == log_role::master ? "\",\"role\":\"master\",\"pid\":" : "\",\"role\":\"worker\",\"pid\":";
  append_number(out, pid);
  if (line_role == log_role::worker) {
    out += ",\"worker\":";
    append_number(out, id);
  }
  out += ",\"msg\":";
  append_json_string(out, message);
  for (const auto& field : fields) {
    out.push_back(',');
    if (is_line_key(field.key, line_role)) {
      std::string prefixed = "event.";
      prefixed.append(field.key);
      append_json_string(out, prefixed);
    } else {
      append_json_string(out, field.key);
    }
    out.push_back(':');
    append_value(out, field.value, render_style::json);
  }
  out += "}\n";
}

}  // namespace

boost::system::error_code init_logging(const log_config& cfg) {
  auto& s = state();
  std::lock_guard guard(s.configure_mutex);
  int fd = -1;
  bool owned = false;
  if (auto ec = open_destination(cfg.file, fd, owned)) return ec;
  s.sink->locked_backend()->replace(cfg.file, fd, owned);
  line_format.store(cfg.format, std::memory_order_relaxed);
  threshold.store(cfg.level, std::memory_order_relaxed);
  return {};
}

void set_log_identity(log_role new_role, int new_worker_id) noexcept {
  role.store(new_role, std::memory_order_relaxed);
  worker_id.store(new_role == log_role::worker ? new_worker_id : -1, std::memory_order_relaxed);
  // Re-read: after fork() the child's pid differs from the one cached by its parent.
  own_pid.store(static_cast<int>(::getpid()), std::memory_order_relaxed);
}

boost::system::error_code reopen_logs() {
  auto& s = state();
  std::lock_guard guard(s.configure_mutex);
  std::string path = s.sink->locked_backend()->path();
  if (path == "-") return {};
  int fd = -1;
  bool owned = false;
  if (auto ec = open_destination(path, fd, owned)) return ec;
  s.sink->locked_backend()->replace(std::move(path), fd, owned);
  return {};
}

int log_descriptor() noexcept { return state().sink->locked_backend()->descriptor(); }

bool log_enabled(log_level level) noexcept { return level >= threshold.load(std::memory_order_relaxed); }

void log(log_level level, std::string_view message, std::span<const log_field> fields) noexcept {
  if (!log_enabled(level)) return;
  try {
    // Rendered here, into a reused buffer, and handed to Boost.Log as the record's message:
    // the backend only writes it.
    thread_local std::string line;
    line.clear();
    auto line_role = role.load(std::memory_order_relaxed);
    int id = worker_id.load(std::memory_order_relaxed);
    int pid = current_pid();
    if (line_format.load(std::memory_order_relaxed) == log_format::json) {
      render_json(line, level, message, fields, line_role, id, pid);
    } else {
      render_text(line, level, message, fields, line_role, id, pid);
    }
    auto& s = state();
    logging::record record = s.core->open_record(s.no_source_attributes);
    if (!record) return;
    {
      logging::record_ostream stream(record);
      stream.write(line.data(), static_cast<std::streamsize>(line.size()));
      stream.flush();
    }
    s.core->push_record(std::move(record));
  } catch (...) {
    // Dropped: a logger that throws would turn a report into a crash.
  }
}

}  // namespace prefork
