// Maps a request's method and path to a handler: plain functions that return a response,
// or coroutines that co_await before they do. 404 for an unknown path, 405 with `Allow`
// for a known path and another method.
#pragma once

#include "prefork/http/request.hpp"
#include "prefork/http/response.hpp"

#include <boost/asio/awaitable.hpp>

#include <concepts>
#include <functional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace prefork::http {

/// A handler that answers at once, on the worker's event loop.
using plain_handler = std::function<response(const request&)>;
/// A handler that may wait (timers, other sockets) without blocking the worker's loop.
using coroutine_handler = std::function<boost::asio::awaitable<response>(const request&)>;

/// A callable that can be registered as a route.
template <typename F>
concept handler_function = std::invocable<F&, const request&> &&
    (std::convertible_to<std::invoke_result_t<F&, const request&>, response> ||
     std::same_as<std::invoke_result_t<F&, const request&>, boost::asio::awaitable<response>>);

/// What the router found for a request: a handler, or the answer when there is none.
struct route_match {
  const plain_handler* plain = nullptr;          // set when a plain handler serves it
  const coroutine_handler* coroutine = nullptr;  // set when a coroutine handler serves it
  unsigned status = 200;                         // 404 or 405 when neither is set
  std::string allow;                             // for 405: "GET, HEAD"
};

/// Routes in registration order. A pattern is a path of '/'-separated segments, each
/// literal or `{name}` (one non-empty segment, read with request::path_parameter), e.g.
/// `/items/{id}`. Matching is on the raw path (not percent-decoded), exact otherwise
/// (`/items/` is not `/items`). The first pattern that matches the path and has the
/// method wins; when patterns match the path but none has the method, the answer is 405
/// with the methods they have. A route added with get() also answers HEAD (the loop drops
/// the body) unless HEAD has a route of its own; add(verb::get, ...) answers GET alone
/// (for a route a HEAD probe must not trigger). Build the router before the app starts: it is read,
/// never changed, while workers serve.
class router {
 public:
  /// GET (and HEAD). Throws std::invalid_argument for a malformed pattern, a duplicate
  /// method on the same pattern, or more than max_path_parameters parameters.
  template <handler_function F>
  router& get(std::string_view pattern, F&& handler) {
    add(verb::get, pattern, std::forward<F>(handler));
    return answer_head_with_get(pattern);
  }
  template <handler_function F>
  router& post(std::string_view pattern, F&& handler) {
    return add(verb::post, pattern, std::forward<F>(handler));
  }
  template <handler_function F>
  router& put(std::string_view pattern, F&& handler) {
    return add(verb::put, pattern, std::forward<F>(handler));
  }
  template <handler_function F>
  router& patch(std::string_view pattern, F&& handler) {
    return add(verb::patch, pattern, std::forward<F>(handler));
  }
  template <handler_function F>
  router& delete_(std::string_view pattern, F&& handler) {
    return add(verb::delete_, pattern, std::forward<F>(handler));
  }

  /// Any method Beast knows (not verb::unknown), that method alone.
  template <handler_function F>
  router& add(verb method, std::string_view pattern, F&& handler) {
    using result = std::invoke_result_t<F&, const request&>;
    if constexpr (std::same_as<result, boost::asio::awaitable<response>>) {
      return add_coroutine(method, pattern, coroutine_handler(std::forward<F>(handler)));
    } else {
      return add_plain(method, pattern, plain_handler(std::forward<F>(handler)));
    }
  }

  router& add_plain(verb method, std::string_view pattern, plain_handler handler);
  router& add_coroutine(verb method, std::string_view pattern, coroutine_handler handler);
  /// Lets the GET handler of `pattern` answer HEAD too (what get() does).
  router& answer_head_with_get(std::string_view pattern);

  /// The handler for `r` (filling its path parameters), or the 404/405 to answer.
  route_match match(request& r) const;

  /// The patterns registered, in order (for logs and tests).
  std::vector<std::string> patterns() const;

 private:
  struct segment {
    std::string text;
    bool parameter = false;  // `{text}`
  };
  struct method_handler {
    verb method;
    plain_handler plain;
    coroutine_handler coroutine;
  };
  struct route {
    std::string pattern;
    std::vector<segment> segments;
    bool literal = true;  // no parameters: matched by comparing the whole path
    std::vector<method_handler> methods;
    bool head_from_get = false;  // HEAD without a handler of its own is served by GET's
    std::string allow;           // "GET, HEAD, POST"
  };

  route& route_for(std::string_view pattern);
  void add_handler(verb method, std::string_view pattern, method_handler handler);
  static void update_allow(route& r);
  static bool matches(const route& r, std::string_view path, request& q);
  static route_match found(const method_handler& h) noexcept;

  std::vector<route> routes_;
};

}  // namespace prefork::http
