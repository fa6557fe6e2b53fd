// The connection loop shared by the HTTP apps (hello, testbed): serve_http reads requests
// with Beast (limits, deadlines, keep-alive, pipelining) and asks a router for each response.
// No Beast here: a router sees a request and fills a response through plain views.
#pragma once

#include "prefork/connection.hpp"

#include <boost/asio/awaitable.hpp>

#include <string>
#include <string_view>

namespace prefork::detail {

enum class http_method { get, head, post, put, delete_method, options, patch, other };

/// One parsed request whose limits were checked. Views stay valid until its response
/// has been written.
struct http_request {
  http_method method = http_method::other;
  std::string_view method_text;  // as sent, e.g. "GET"
  std::string_view target;       // as sent, e.g. "/sleep?ms=5"
  std::string_view path;         // target without the query: "/sleep"
  std::string_view query;        // after '?', without it: "ms=5" (empty when none)
  std::string_view body;
  unsigned version = 11;  // 10 or 11
};

/// Whether the connection may go on after a response.
enum class after_response { keep_alive, close };

/// What a router fills. serve_http adds Server, Date, Content-Length and Connection, and
/// drops the body (keeping Content-Length) for HEAD requests. One object per connection,
/// reset before each request; `storage` keeps its capacity so routes that format a body
/// (JSON, numbers) do not allocate per request.
struct http_response {
  unsigned status = 200;
  std::string_view content_type = "text/plain; charset=utf-8";  // omitted when empty
  std::string_view extra_headers;                               // zero or more complete lines: "Allow: GET, HEAD\r\n"
  std::string_view body;                                        // static text, `storage`, or a view into the request
  std::string storage;                                          // scratch that body or extra_headers may point into
  after_response after = after_response::keep_alive;

  void reset() noexcept {
    status = 200;
    content_type = "text/plain; charset=utf-8";
    extra_headers = {};
    body = {};
    storage.clear();
    after = after_response::keep_alive;
  }
};

/// How a router answered.
enum class route_result {
  done,      // the response is filled
  deferred,  // call http_router::route_deferred and await it (e.g. a /sleep route)
};

/// Maps a request to a response. Plain function pointers: no allocation, no Beast.
/// A route may throw; the exception ends the connection (the worker logs it).
struct http_router {
  using route_fn = route_result (*)(const http_request& request, http_response& response, connection& conn);
  using deferred_fn = boost::asio::awaitable<void> (*)(const http_request& request, http_response& response,
                                                       connection& conn);
  route_fn route = nullptr;
  deferred_fn route_deferred = nullptr;  // required if route can return deferred
};

/// Serves HTTP/1.0 and 1.1 on `conn` until the client or the worker ends it (SPEC 4):
/// limits (431, 413), malformed requests (400) and the request deadline (408) are
/// answered before routing and close the connection. The first request is read at once
/// (a new connection silent for request_timeout is closed without an answer); between
/// requests an idle connection waits in connection::wait_for_request and ends quietly on
/// idle timeout or drain. Pipelined requests are answered in order, batched in one write.
/// A response written while the worker drains says `Connection: close`. Each response
/// written counts once in worker_context::count_request. Socket errors and write
/// deadlines (request_timeout per write) end the connection quietly; exceptions propagate
/// (the caller logs them) after the connection is closed.
boost::asio::awaitable<void> serve_http(connection conn, http_router router);

/// The hello app's routes (SPEC 4), for routers that extend it (testbed): GET and HEAD
/// on `/` and `/healthz`, 405 with `Allow: GET, HEAD` for another method there, 404 for
/// any other path whatever the method. Never defers, never throws.
route_result route_hello(const http_request& request, http_response& response, connection& conn);

}  // namespace prefork::detail
