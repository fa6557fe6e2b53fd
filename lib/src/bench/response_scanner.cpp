#include "prefork/bench.hpp"

#include <algorithm>
#include <charconv>

namespace prefork {
namespace {

char lower(char c) noexcept { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }
bool is_digit(char c) noexcept { return c >= '0' && c <= '9'; }
bool is_space(char c) noexcept { return c == ' ' || c == '\t' || c == '\r'; }

int hex_value(char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string_view trim(std::string_view text) noexcept {
  while (!text.empty() && is_space(text.front())) text.remove_prefix(1);
  while (!text.empty() && is_space(text.back())) text.remove_suffix(1);
  return text;
}

// Whether the comma-separated list `value` holds `token` (both lowercase).
bool has_token(std::string_view value, std::string_view token) noexcept {
  while (!value.empty()) {
    const auto comma = value.find(',');
    if (trim(value.substr(0, comma)) == token) return true;
    if (comma == std::string_view::npos) break;
    value.remove_prefix(comma + 1);
  }
  return false;
}

// A chunk size of 15 hex digits is already 1 PiB: more is an attack or garbage.
constexpr unsigned max_chunk_size_digits = 15;

}  // namespace

void http_response_scanner::reset() noexcept { *this = http_response_scanner{}; }

http_response_scanner::scan_state http_response_scanner::fail(const char* why) noexcept {
  phase_ = phase::failed;
  state_ = scan_state::malformed;
  error_ = why;
  return state_;
}

bool http_response_scanner::finish_status_line() noexcept {
  // "HTTP/1.x NNN" then a space (and a reason), or the end of the line.
  const std::string_view line(line_.data(), line_size_);
  if (line.size() < 12 || !line.starts_with("HTTP/1.") || !is_digit(line[7]) || line[8] != ' ' || !is_digit(line[9]) ||
      !is_digit(line[10]) || !is_digit(line[11]) || (line.size() > 12 && line[12] != ' ' && line[12] != '\r')) {
    fail("bad status line");
    return false;
  }
  http_1_0_ = line[7] == '0';
  status_code_ = static_cast<unsigned>((line[9] - '0') * 100 + (line[10] - '0') * 10 + (line[11] - '0'));
  return true;
}

bool http_response_scanner::finish_header() noexcept {
  if (current_header_ == header::other) return true;
  if (value_size_ > value_.size()) {
    if (current_header_ == header::content_length) {
      fail("Content-Length too long");
      return false;
    }
    value_size_ = value_.size();  // Connection and Transfer-Encoding: judge what we kept
  }
  const auto value = trim(std::string_view(value_.data(), value_size_));
  switch (current_header_) {
    case header::content_length: {
      std::uint64_t length = 0;
      const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), length);
      if (value.empty() || ec != std::errc{} || end != value.data() + value.size()) {
        fail("bad Content-Length");
        return false;
      }
      if (content_length_ && *content_length_ != length) {
        fail("two different Content-Length values");
        return false;
      }
      content_length_ = length;
      break;
    }
    case header::connection:
      connection_close_ = connection_close_ || has_token(value, "close");
      connection_keep_alive_ = connection_keep_alive_ || has_token(value, "keep-alive");
      break;
    case header::transfer_encoding:
      // Chunked is the last coding when present (RFC 9112 6.1); other codings alone mean the
      // body runs to the close.
      chunked_ = value.ends_with("chunked");
      break;
    case header::other: break;
  }
  return true;
}

http_response_scanner::scan_state http_response_scanner::finish_headers() noexcept {
  if ((status_code_ >= 100 && status_code_ < 200) || status_code_ == 204 || status_code_ == 304) {
    framing_ = body_framing::none;
  } else if (chunked_) {
    framing_ = body_framing::chunked;
  } else if (content_length_) {
    framing_ = body_framing::length;
  } else {
    framing_ = body_framing::until_close;
  }
  switch (framing_) {
    case body_framing::none: phase_ = phase::done; break;
    case body_framing::length:
      remaining_ = *content_length_;
      phase_ = remaining_ == 0 ? phase::done : phase::body_length;
      break;
    case body_framing::chunked:
      phase_ = phase::chunk_size;
      remaining_ = 0;
      chunk_size_digits_ = 0;
      break;
    case body_framing::until_close: phase_ = phase::body_until_close; break;
  }
  if (phase_ == phase::done) state_ = scan_state::complete;
  return state_;
}

http_response_scanner::scan_result http_response_scanner::feed(std::string_view data) noexcept {
  if (state_ != scan_state::need_more) return {state_, 0};
  std::size_t i = 0;
  const auto size = data.size();
  // Header and trailer bytes count against max_header_bytes; body bytes do not.
  const auto count_header_byte = [this]() noexcept { return ++header_bytes_ <= max_header_bytes; };
  while (i < size && state_ == scan_state::need_more) {
    const char c = data[i];
    switch (phase_) {
      case phase::status_line:
        if (!count_header_byte()) return {fail("headers too large"), i};
        ++i;
        if (c == '\n') {
          if (!finish_status_line()) return {state_, i};
          phase_ = phase::header_name;
          line_size_ = 0;
        } else if (line_size_ < line_.size()) {
          line_[line_size_++] = c;
        }
        break;

      case phase::header_name:
        if (!count_header_byte()) return {fail("headers too large"), i};
        ++i;
        if (line_size_ == 0 && c == '\r') {
          phase_ = phase::header_line_end;
        } else if (line_size_ == 0 && c == '\n') {
          finish_headers();
        } else if (c == ':') {
          const std::string_view name(line_.data(), std::min(line_size_, line_.size()));
          current_header_ = line_size_ > line_.size()     ? header::other
                            : name == "content-length"    ? header::content_length
                            : name == "connection"        ? header::connection
                            : name == "transfer-encoding" ? header::transfer_encoding
                                                          : header::other;
          value_size_ = 0;
          phase_ = phase::header_value;
        } else if (c == '\r' || c == '\n') {
          return {fail("header line without a colon"), i};
        } else if (line_size_ < line_.size()) {
          line_[line_size_++] = lower(c);
        } else {
          line_size_ = line_.size() + 1;  // longer than any name we look for
        }
        break;

      case phase::header_value:
        if (!count_header_byte()) return {fail("headers too large"), i};
        ++i;
        if (c == '\n') {
          if (!finish_header()) return {state_, i};
          phase_ = phase::header_name;
          line_size_ = 0;
        } else if (current_header_ != header::other && !(value_size_ == 0 && is_space(c))) {
          if (value_size_ < value_.size()) {
            value_[value_size_++] = lower(c);
          } else {
            value_size_ = value_.size() + 1;
          }
        }
        break;

      case phase::header_line_end:  // the CR of the empty line that ends the headers was read
        if (!count_header_byte()) return {fail("headers too large"), i};
        ++i;
        if (c != '\n') return {fail("CR without LF after the headers"), i};
        finish_headers();
        break;

      case phase::body_length: {
        const auto take = static_cast<std::size_t>(std::min<std::uint64_t>(remaining_, size - i));
        i += take;
        remaining_ -= take;
        body_bytes_ += take;
        if (remaining_ == 0) {
          phase_ = phase::done;
          state_ = scan_state::complete;
        }
        break;
      }

      case phase::body_until_close:
        body_bytes_ += size - i;
        i = size;
        break;

      case phase::chunk_size:
        ++i;
        if (const int digit = hex_value(c); digit >= 0) {
          if (++chunk_size_digits_ > max_chunk_size_digits) return {fail("chunk size too large"), i};
          remaining_ = remaining_ * 16 + static_cast<unsigned>(digit);
        } else if (chunk_size_digits_ == 0) {
          return {fail("bad chunk size"), i};
        } else if (c == ';' || c == ' ' || c == '\t') {
          phase_ = phase::chunk_extension;
        } else if (c == '\r') {
          phase_ = phase::chunk_size_end;
        } else if (c == '\n') {
          phase_ = remaining_ == 0 ? phase::trailer_line_start : phase::chunk_data;
        } else {
          return {fail("bad chunk size"), i};
        }
        break;

      case phase::chunk_extension:
        ++i;
        if (c == '\n') phase_ = remaining_ == 0 ? phase::trailer_line_start : phase::chunk_data;
        break;

      case phase::chunk_size_end:
        ++i;
        if (c != '\n') return {fail("CR without LF after a chunk size"), i};
        phase_ = remaining_ == 0 ? phase::trailer_line_start : phase::chunk_data;
        break;

      case phase::chunk_data: {
        const auto take = static_cast<std::size_t>(std::min<std::uint64_t>(remaining_, size - i));
        i += take;
        remaining_ -= take;
        body_bytes_ += take;
        if (remaining_ == 0) phase_ = phase::chunk_data_cr;
        break;
      }

      case phase::chunk_data_cr:
      case phase::chunk_data_lf:
        ++i;
        if (c == '\r' && phase_ == phase::chunk_data_cr) {
          phase_ = phase::chunk_data_lf;
        } else if (c == '\n') {
          phase_ = phase::chunk_size;
          chunk_size_digits_ = 0;
        } else {
          return {fail("chunk data without CRLF"), i};
        }
        break;

      case phase::trailer_line_start:
        if (!count_header_byte()) return {fail("trailers too large"), i};
        ++i;
        if (c == '\r') {
          phase_ = phase::trailer_end;
        } else if (c == '\n') {
          phase_ = phase::done;
          state_ = scan_state::complete;
        } else {
          phase_ = phase::trailer_line;
        }
        break;

      case phase::trailer_line:
        if (!count_header_byte()) return {fail("trailers too large"), i};
        ++i;
        if (c == '\n') phase_ = phase::trailer_line_start;
        break;

      case phase::trailer_end:
        ++i;
        if (c != '\n') return {fail("CR without LF after the trailers"), i};
        phase_ = phase::done;
        state_ = scan_state::complete;
        break;

      case phase::done:
      case phase::failed: return {state_, i};
    }
  }
  return {state_, i};
}

http_response_scanner::scan_state http_response_scanner::finish_at_eof() noexcept {
  if (state_ == scan_state::need_more && phase_ == phase::body_until_close) {
    phase_ = phase::done;
    state_ = scan_state::complete;
  }
  return state_;
}

http_response_scanner::reuse http_response_scanner::connection_reuse() const noexcept {
  if (framing_ == body_framing::until_close || connection_close_) return reuse::close;
  if (http_1_0_ && !connection_keep_alive_) return reuse::close;
  return reuse::keep_alive;
}

}  // namespace prefork
