// What an HTTP handler is given: one complete request whose limits were checked (method,
// target, headers, body, the path's parameters) and the identity of the worker serving it.
#pragma once

#include <boost/beast/http/field.hpp>
#include <boost/beast/http/fields.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/verb.hpp>

#include <array>
#include <cstddef>
#include <memory_resource>
#include <optional>
#include <string_view>

namespace prefork {
class worker_context;
}

namespace prefork::http {

class router;

using verb = boost::beast::http::verb;
using field = boost::beast::http::field;
/// Beast's header fields, allocated from the connection's per-request arena.
using fields = boost::beast::http::basic_fields<std::pmr::polymorphic_allocator<char>>;
/// The parsed request as Beast holds it.
using message = boost::beast::http::request<boost::beast::http::string_body, fields>;

/// Most `{name}` segments one route pattern may have.
inline constexpr std::size_t max_path_parameters = 8;

/// A request as a handler sees it. Every view stays valid until the handler's response has
/// been written (a coroutine handler may keep them across its co_awaits); copy what must
/// live longer.
class request {
 public:
  request(const message& parsed, const worker_context& worker) noexcept;

  verb method() const noexcept { return message_->method(); }
  /// The method as sent, e.g. "GET", also for methods Beast does not know (verb::unknown).
  std::string_view method_string() const noexcept;
  /// The target as sent, e.g. "/items/7?verbose=1". Not percent-decoded.
  std::string_view target() const noexcept { return target_; }
  /// The target without its query: "/items/7".
  std::string_view path() const noexcept { return path_; }
  /// The query after '?', without it: "verbose=1"; empty when there is none.
  std::string_view query() const noexcept { return query_; }
  /// The value of the query parameter `name` (the first occurrence; empty for `name` or
  /// `name=`); nullopt when absent. Not percent-decoded.
  std::optional<std::string_view> query_parameter(std::string_view name) const noexcept;
  /// The value the route pattern's `{name}` segment matched; nullopt when the pattern has
  /// no such segment. Not percent-decoded.
  std::optional<std::string_view> path_parameter(std::string_view name) const noexcept;
  /// The first value of header `name` (case-insensitive); nullopt when absent.
  std::optional<std::string_view> header(std::string_view name) const;
  std::optional<std::string_view> header(field name) const;
  /// The body (decoded from chunked transfer coding), at most http.max_body_bytes.
  std::string_view body() const noexcept { return message_->body(); }
  /// 10 for HTTP/1.0, 11 for HTTP/1.1.
  unsigned version() const noexcept { return message_->version(); }
  /// Everything Beast parsed, for what the accessors above do not cover.
  const message& beast_message() const noexcept { return *message_; }

  /// The worker serving the request: id(), pid(), generation(), settings(), draining().
  const worker_context& worker() const noexcept { return *worker_; }

 private:
  friend class router;  // fills the path parameters of the pattern that matched

  struct parameter {
    std::string_view name;
    std::string_view value;
  };

  const message* message_;
  const worker_context* worker_;
  std::string_view target_;
  std::string_view path_;
  std::string_view query_;
  std::array<parameter, max_path_parameters> parameters_{};
  std::size_t parameter_count_ = 0;
};

}  // namespace prefork::http
