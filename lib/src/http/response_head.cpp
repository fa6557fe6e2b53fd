// Response heads for http::serve, with the Date header formatted at most once per second
// (RFC 9110 IMF-fixdate).
#include "http/response_head.hpp"

#include <boost/beast/core/string.hpp>
#include <boost/beast/http/status.hpp>

#include <algorithm>
#include <array>
#include <charconv>
#include <ctime>
#include <string_view>

namespace prefork::http::detail {
namespace {

namespace beast = boost::beast;
namespace bhttp = beast::http;

class date_line_cache {
 public:
  std::string_view line() noexcept {
    const std::time_t now = std::time(nullptr);
    if (now != second_) format(now);
    return {text_.data(), text_.size()};
  }

 private:
  static char* put2(char* p, int value) noexcept {
    *p++ = static_cast<char>('0' + value / 10 % 10);
    *p++ = static_cast<char>('0' + value % 10);
    return p;
  }

  void format(std::time_t now) noexcept {
    static constexpr std::string_view days = "SunMonTueWedThuFriSat";
    static constexpr std::string_view months = "JanFebMarAprMayJunJulAugSepOctNovDec";
    std::tm utc{};
    ::gmtime_r(&now, &utc);
    char* p = text_.data();
    p = std::copy_n("Date: ", 6, p);
    p = std::copy_n(days.data() + 3 * utc.tm_wday, 3, p);
    p = std::copy_n(", ", 2, p);
    p = put2(p, utc.tm_mday);
    *p++ = ' ';
    p = std::copy_n(months.data() + 3 * utc.tm_mon, 3, p);
    *p++ = ' ';
    const int year = utc.tm_year + 1900;
    p = put2(p, year / 100);
    p = put2(p, year % 100);
    *p++ = ' ';
    p = put2(p, utc.tm_hour);
    *p++ = ':';
    p = put2(p, utc.tm_min);
    *p++ = ':';
    p = put2(p, utc.tm_sec);
    std::copy_n(" GMT\r\n", 6, p);
    second_ = now;
  }

  std::time_t second_ = -1;
  std::array<char, 37> text_{};  // "Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n"
};

thread_local date_line_cache date_cache;

void append_status_line(std::string& out, unsigned status) {
  switch (status) {
    case 200: out += "HTTP/1.1 200 OK\r\n"; return;
    case 400: out += "HTTP/1.1 400 Bad Request\r\n"; return;
    case 404: out += "HTTP/1.1 404 Not Found\r\n"; return;
    case 405: out += "HTTP/1.1 405 Method Not Allowed\r\n"; return;
    case 408: out += "HTTP/1.1 408 Request Timeout\r\n"; return;
    case 413: out += "HTTP/1.1 413 Payload Too Large\r\n"; return;
    case 431: out += "HTTP/1.1 431 Request Header Fields Too Large\r\n"; return;
    default: break;
  }
  std::array<char, 16> digits{};
  const auto [end, ignored] = std::to_chars(digits.data(), digits.data() + digits.size(), status);
  // The reason phrase is optional (RFC 9112 4): empty for a status Beast does not know.
  const beast::string_view reason = bhttp::int_to_status(status) == bhttp::status::unknown
                                        ? ""
                                        : bhttp::obsolete_reason(static_cast<bhttp::status>(status));
  out += "HTTP/1.1 ";
  out.append(digits.data(), end);
  out += ' ';
  out.append(reason.data(), reason.size());
  out += "\r\n";
}

}  // namespace

void append_head(std::string& out, const response& answer, connection_header connection, framing frame) {
  append_status_line(out, answer.status());
  out += "Server: prefork\r\n";
  out += date_cache.line();
  const std::string_view content_type = answer.content_type();
  if (!content_type.empty()) {
    out += "Content-Type: ";
    out += content_type;
    out += "\r\n";
  }
  if (frame == framing::chunked && !without_content(answer.status())) {
    out += "Transfer-Encoding: chunked\r\n";
  } else if (frame == framing::content_length && !without_content(answer.status())) {
    std::array<char, 24> digits{};
    const auto [end, ignored] = std::to_chars(digits.data(), digits.data() + digits.size(), answer.body().size());
    out += "Content-Length: ";
    out.append(digits.data(), end);
    out += "\r\n";
  }
  out += answer.header_lines();
  if (connection == connection_header::close) {
    out += "Connection: close\r\n";
  } else if (connection == connection_header::keep_alive) {
    out += "Connection: keep-alive\r\n";
  }
  out += "\r\n";
}

}  // namespace prefork::http::detail
