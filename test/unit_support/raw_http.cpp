#include "unit_support/raw_http.hpp"

#include <algorithm>
#include <cctype>

namespace prefork::unit_support {

long millis(std::chrono::steady_clock::duration duration) {
  return static_cast<long>(std::chrono::duration_cast<std::chrono::milliseconds>(duration).count());
}

std::size_t complete_response_length(std::string_view data, bool head) {
  const std::size_t head_end = data.find("\r\n\r\n");
  if (head_end == std::string_view::npos) return 0;
  std::string header(data.substr(0, head_end + 2));
  std::transform(header.begin(), header.end(), header.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (!head && header.find("\r\ntransfer-encoding: chunked\r\n") != std::string::npos) {
    // Chunks up to the last (size 0), then the empty line (no trailers are sent).
    std::size_t at = head_end + 4;
    for (;;) {
      const std::size_t line_end = data.find("\r\n", at);
      if (line_end == std::string_view::npos) return 0;
      const std::size_t size = std::stoul(std::string(data.substr(at, line_end - at)), nullptr, 16);
      at = line_end + 2 + size + 2;
      if (data.size() < at) return 0;
      if (size == 0) return at;
    }
  }
  std::size_t body = 0;
  const std::size_t at = header.find("\r\ncontent-length: ");
  if (at != std::string::npos && !head) body = std::stoul(header.substr(at + 18));
  const std::size_t total = head_end + 4 + body;
  return data.size() >= total ? total : 0;
}

bool has_line(const std::string& response, std::string_view line) {
  const std::string header = response.substr(0, response.find("\r\n\r\n") + 2);
  return header.find("\r\n" + std::string(line) + "\r\n") != std::string::npos;
}

std::string status_line(const std::string& response) { return response.substr(0, response.find("\r\n")); }

std::string body_of(const std::string& response) {
  const std::size_t end = response.find("\r\n\r\n");
  return end == std::string::npos ? std::string() : response.substr(end + 4);
}

std::string dechunked_body_of(const std::string& response) {
  std::string body;
  std::size_t at = response.find("\r\n\r\n");
  if (at == std::string::npos) return body;
  at += 4;
  for (;;) {
    const std::size_t line_end = response.find("\r\n", at);
    if (line_end == std::string::npos) return body;
    const std::size_t size = std::stoul(response.substr(at, line_end - at), nullptr, 16);
    if (size == 0) return body;
    body += response.substr(line_end + 2, size);
    at = line_end + 2 + size + 2;
  }
}

}  // namespace prefork::unit_support
