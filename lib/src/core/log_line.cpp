#include "core/log_line.hpp"

#include <charconv>
#include <cmath>
#include <cstdint>
#include <type_traits>
#include <variant>

namespace prefork::detail {
namespace {

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

/// The proleptic Gregorian date of a day count since 1970-01-01 (Howard Hinnant's
/// civil_from_days): gmtime_r would do, but glibc takes its timezone lock even for UTC.
struct civil_date {
  std::int64_t year;
  int month;  // 1-12
  int day;    // 1-31
};

civil_date civil_from_days(std::int64_t days) noexcept {
  days += 719468;  // days from 0000-03-01 to 1970-01-01
  const std::int64_t era = (days >= 0 ? days : days - 146096) / 146097;
  const auto day_of_era = static_cast<unsigned>(days - era * 146097);  // [0, 146096]
  const unsigned year_of_era =
      (day_of_era - day_of_era / 1460 + day_of_era / 36524 - day_of_era / 146096) / 365;                // [0, 399]
  const unsigned day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);  // [0, 365]
  const unsigned shifted_month = (5 * day_of_year + 2) / 153;  // [0, 11] from March
  const unsigned day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
  const unsigned month = shifted_month < 10 ? shifted_month + 3 : shifted_month - 9;
  const std::int64_t year = static_cast<std::int64_t>(year_of_era) + era * 400 + (month <= 2 ? 1 : 0);
  return {year, static_cast<int>(month), static_cast<int>(day)};
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
                 const log_identity& who, const timespec& now) {
  append_utc_timestamp(out, now);
  out.push_back(' ');
  auto name = level_name(level);
  out.append(name);
  out.append(name.size() < 7 ? 8 - name.size() : 1, ' ');  // "warning" is the widest
  if (who.role == log_role::master) {
    out += "master[";
  } else {
    out += "worker.";
    append_number(out, who.worker_id);
    out.push_back('[');
  }
  append_number(out, who.pid);
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
                 const log_identity& who, const timespec& now) {
  out += "{\"ts\":\"";
  append_utc_timestamp(out, now);
  out += "\",\"level\":\"";
  out.append(level_name(level));
  out += who.role == log_role::master ? "\",\"role\":\"master\",\"pid\":" : "\",\"role\":\"worker\",\"pid\":";
  append_number(out, who.pid);
  if (who.role == log_role::worker) {
    out += ",\"worker\":";
    append_number(out, who.worker_id);
  }
  out += ",\"msg\":";
  append_json_string(out, message);
  for (const auto& field : fields) {
    out.push_back(',');
    if (is_line_key(field.key, who.role)) {
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

void append_utc_timestamp(std::string& out, const timespec& now) {
  constexpr std::int64_t seconds_per_day = 86400;
  std::int64_t days = now.tv_sec / seconds_per_day;
  std::int64_t second_of_day = now.tv_sec % seconds_per_day;
  if (second_of_day < 0) {  // before 1970: the division rounded towards zero
    second_of_day += seconds_per_day;
    --days;
  }
  civil_date date = civil_from_days(days);
  append_padded(out, static_cast<int>(date.year), 4);
  out.push_back('-');
  append_padded(out, date.month, 2);
  out.push_back('-');
  append_padded(out, date.day, 2);
  out.push_back('T');
  append_padded(out, static_cast<int>(second_of_day / 3600), 2);
  out.push_back(':');
  append_padded(out, static_cast<int>(second_of_day / 60 % 60), 2);
  out.push_back(':');
  append_padded(out, static_cast<int>(second_of_day % 60), 2);
  out.push_back('.');
  append_padded(out, static_cast<int>(now.tv_nsec / 1000000), 3);
  out.push_back('Z');
}

void render_log_line(std::string& out, log_format format, log_level level, std::string_view message,
                     std::span<const log_field> fields, const log_identity& who, const timespec& now) {
  if (format == log_format::json) {
    render_json(out, level, message, fields, who, now);
  } else {
    render_text(out, level, message, fields, who, now);
  }
}

}  // namespace prefork::detail
