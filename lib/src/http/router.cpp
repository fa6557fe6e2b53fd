// router: patterns parsed at registration, matched segment by segment per request.
#include "prefork/http/router.hpp"

#include <boost/beast/http/verb.hpp>

#include <algorithm>
#include <stdexcept>
#include <string>
#include <utility>

namespace prefork::http {
namespace {

std::string_view to_std(boost::beast::string_view text) noexcept { return {text.data(), text.size()}; }

[[noreturn]] void bad_pattern(std::string_view pattern, const std::string& why) {
  throw std::invalid_argument("route \"" + std::string(pattern) + "\": " + why);
}

/// Splits "/a/{b}" into its segments after the leading '/'; "/" has one empty segment.
template <typename Segment>
std::vector<Segment> parse_pattern(std::string_view pattern) {
  if (pattern.empty() || pattern.front() != '/') bad_pattern(pattern, "must start with '/'");
  if (pattern.find_first_of("?# \t\r\n") != std::string_view::npos)
    bad_pattern(pattern, "a path may not contain '?', '#' or whitespace");
  std::vector<Segment> segments;
  std::size_t parameters = 0;
  std::string_view rest = pattern.substr(1);
  for (;;) {
    const std::size_t slash = rest.find('/');
    const std::string_view text = rest.substr(0, slash);
    Segment s;
    if (text.size() >= 2 && text.front() == '{' && text.back() == '}') {
      s.text = text.substr(1, text.size() - 2);
      s.parameter = true;
      if (s.text.find_first_of("{}") != std::string::npos || s.text.empty()) bad_pattern(pattern, "bad parameter");
      if (++parameters > max_path_parameters)
        bad_pattern(pattern, "more than " + std::to_string(max_path_parameters) + " parameters");
      for (const Segment& earlier : segments)
        if (earlier.parameter && earlier.text == s.text) bad_pattern(pattern, "parameter {" + s.text + "} twice");
    } else if (text.find_first_of("{}") != std::string_view::npos) {
      bad_pattern(pattern, "a parameter must be a whole segment: {name}");
    } else {
      s.text = text;
    }
    segments.push_back(std::move(s));
    if (slash == std::string_view::npos) break;
    rest.remove_prefix(slash + 1);
  }
  return segments;
}

}  // namespace

router::route& router::route_for(std::string_view pattern) {
  for (route& r : routes_)
    if (r.pattern == pattern) return r;
  route r;
  r.pattern = pattern;
  r.segments = parse_pattern<segment>(pattern);
  r.literal = std::none_of(r.segments.begin(), r.segments.end(), [](const segment& s) { return s.parameter; });
  return routes_.emplace_back(std::move(r));
}

void router::add_handler(verb method, std::string_view pattern, method_handler handler) {
  if (method == verb::unknown) bad_pattern(pattern, "a route needs a known method");
  route& r = route_for(pattern);
  const std::string_view name = to_std(boost::beast::http::to_string(method));
  for (const method_handler& existing : r.methods)
    if (existing.method == method) bad_pattern(pattern, std::string(name) + " has a handler already");
  handler.method = method;
  r.methods.push_back(std::move(handler));
  update_allow(r);
}

// Allow lists each method once, in registration order, HEAD right after a GET that serves it.
void router::update_allow(route& r) {
  r.allow.clear();
  for (const method_handler& h : r.methods) {
    if (h.method == verb::head && r.head_from_get) continue;
    if (!r.allow.empty()) r.allow += ", ";
    r.allow += to_std(boost::beast::http::to_string(h.method));
    if (h.method == verb::get && r.head_from_get) r.allow += ", HEAD";
  }
}

router& router::answer_head_with_get(std::string_view pattern) {
  const auto found = std::find_if(routes_.begin(), routes_.end(), [&](const route& r) { return r.pattern == pattern; });
  const auto has = [&](verb m) {
    return std::any_of(found->methods.begin(), found->methods.end(),
                       [m](const method_handler& h) { return h.method == m; });
  };
  if (found == routes_.end() || !has(verb::get)) bad_pattern(pattern, "HEAD from GET needs a GET handler");
  found->head_from_get = !has(verb::head);
  update_allow(*found);
  return *this;
}

router& router::add_plain(verb method, std::string_view pattern, plain_handler handler) {
  if (!handler) bad_pattern(pattern, "empty handler");
  add_handler(method, pattern, method_handler{method, std::move(handler), {}});
  return *this;
}

router& router::add_coroutine(verb method, std::string_view pattern, coroutine_handler handler) {
  if (!handler) bad_pattern(pattern, "empty handler");
  add_handler(method, pattern, method_handler{method, {}, std::move(handler)});
  return *this;
}

bool router::matches(const route& r, std::string_view path, request& q) {
  q.parameter_count_ = 0;
  if (r.literal) return path.size() == r.pattern.size() && path == r.pattern;
  if (path.empty() || path.front() != '/') return false;
  std::string_view rest = path.substr(1);
  for (std::size_t i = 0; i < r.segments.size(); ++i) {
    const std::size_t slash = rest.find('/');
    const bool last = i + 1 == r.segments.size();
    if (last != (slash == std::string_view::npos)) return false;
    const std::string_view text = rest.substr(0, slash);
    const segment& s = r.segments[i];
    if (s.parameter) {
      if (text.empty()) return false;
      q.parameters_[q.parameter_count_++] = {s.text, text};
    } else if (text != s.text) {
      return false;
    }
    if (!last) rest.remove_prefix(slash + 1);
  }
  return true;
}

route_match router::found(const method_handler& h) noexcept {
  route_match m;
  if (h.plain) m.plain = &h.plain;
  if (h.coroutine) m.coroutine = &h.coroutine;
  return m;
}

route_match router::match(request& q) const {
  const verb method = q.method();
  const std::string_view path = q.path();
  std::string allow;  // the methods of the patterns that matched the path, for a 405
  for (const route& r : routes_) {
    if (!matches(r, path, q)) continue;
    const method_handler* head_from_get = nullptr;
    for (const method_handler& h : r.methods) {
      if (h.method == method) return found(h);
      if (method == verb::head && h.method == verb::get && r.head_from_get) head_from_get = &h;
    }
    if (head_from_get != nullptr) return found(*head_from_get);
    if (!allow.empty()) allow += ", ";  // rare: several patterns match; a method may repeat
    allow += r.allow;
  }
  q.parameter_count_ = 0;
  route_match none;
  none.status = allow.empty() ? 404 : 405;
  none.allow = std::move(allow);
  return none;
}

std::vector<std::string> router::patterns() const {
  std::vector<std::string> out;
  out.reserve(routes_.size());
  for (const route& r : routes_) out.push_back(r.pattern);
  return out;
}

}  // namespace prefork::http
