// The public HTTP router and response without sockets: patterns, matching, 404/405 and
// Allow, and the checks on what a handler may set.
#include "prefork/http/response.hpp"
#include "prefork/http/router.hpp"

#include "prefork/config.hpp"
#include "prefork/worker_context.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/test/unit_test.hpp>

#include <memory_resource>
#include <stdexcept>
#include <string>

namespace {

namespace http = prefork::http;

http::response ok(const http::request&) { return http::text(200, "ok\n"); }

/// A parsed request for `method` and `target`, and a worker to serve it.
struct fixture {
  boost::asio::io_context io;
  prefork::config cfg;
  prefork::worker_context worker{io.get_executor(), cfg, 1, 1};
  std::pmr::monotonic_buffer_resource arena;
  http::message message{http::verb::get, "/", 11, std::string{}, http::fields(&arena)};

  http::request make(http::verb method, const std::string& target) {
    message.method(method);
    message.target(target);
    return http::request(message, worker);
  }
};

}  // namespace

BOOST_AUTO_TEST_SUITE(http_router)

BOOST_AUTO_TEST_CASE(bad_patterns_are_refused_when_registered) {
  http::router r;
  BOOST_CHECK_THROW(r.get("", &ok), std::invalid_argument);
  BOOST_CHECK_THROW(r.get("items", &ok), std::invalid_argument);
  BOOST_CHECK_THROW(r.get("/items?x=1", &ok), std::invalid_argument);
  BOOST_CHECK_THROW(r.get("/items/{}", &ok), std::invalid_argument);
  BOOST_CHECK_THROW(r.get("/items/x{id}", &ok), std::invalid_argument);
  BOOST_CHECK_THROW(r.get("/{a}/{a}", &ok), std::invalid_argument);
  BOOST_CHECK_THROW(r.get("/{a}/{b}/{c}/{d}/{e}/{f}/{g}/{h}/{i}", &ok), std::invalid_argument);
  BOOST_CHECK_THROW(r.add(http::verb::unknown, "/x", &ok), std::invalid_argument);
  r.get("/twice", &ok);
  BOOST_CHECK_THROW(r.get("/twice", &ok), std::invalid_argument);
  BOOST_CHECK_THROW(r.add_plain(http::verb::get, "/empty", http::plain_handler{}), std::invalid_argument);
  BOOST_CHECK_THROW(r.answer_head_with_get("/nothing-yet"), std::invalid_argument);
  BOOST_TEST(r.patterns() == std::vector<std::string>{"/twice"});  // nothing half-registered
}

BOOST_AUTO_TEST_CASE(first_pattern_with_the_method_wins) {
  fixture f;
  http::router r;
  r.get("/users/me", [](const http::request&) { return http::text(200, "me"); });
  r.get("/users/{id}", [](const http::request& q) { return http::text(200, std::string(*q.path_parameter("id"))); });
  r.delete_("/users/{id}", &ok);
  http::request me = f.make(http::verb::get, "/users/me");
  BOOST_TEST((*r.match(me).plain)(me).body() == "me");
  http::request seven = f.make(http::verb::get, "/users/7?x=1");
  BOOST_TEST((*r.match(seven).plain)(seven).body() == "7");
  // DELETE /users/me: the literal pattern has no DELETE, the parameter pattern has.
  http::request remove = f.make(http::verb::delete_, "/users/me");
  BOOST_TEST(r.match(remove).plain != nullptr);
  BOOST_TEST(remove.path_parameter("id").value_or("") == "me");
}

BOOST_AUTO_TEST_CASE(allow_lists_the_methods_of_every_matching_pattern) {
  fixture f;
  http::router r;
  r.get("/a", &ok);
  r.post("/a", &ok);
  r.add(http::verb::get, "/b", &ok);
  http::request put = f.make(http::verb::put, "/a");
  const http::route_match m = r.match(put);
  BOOST_TEST(m.plain == nullptr);
  BOOST_TEST(m.status == 405u);
  BOOST_TEST(m.allow == "GET, HEAD, POST");
  http::request head = f.make(http::verb::head, "/b");
  BOOST_TEST(r.match(head).allow == "GET");
  http::request missing = f.make(http::verb::get, "/c");
  BOOST_TEST(r.match(missing).status == 404u);
  http::request trailing = f.make(http::verb::get, "/a/");
  BOOST_TEST(r.match(trailing).status == 404u);
}

BOOST_AUTO_TEST_CASE(head_has_its_own_handler_when_one_is_registered) {
  fixture f;
  http::router r;
  r.get("/x", [](const http::request&) { return http::text(200, "get"); });
  r.add(http::verb::head, "/x", [](const http::request&) { return http::text(200, "head"); });
  http::request head = f.make(http::verb::head, "/x");
  BOOST_TEST((*r.match(head).plain)(head).body() == "head");
}

BOOST_AUTO_TEST_CASE(request_reads_query_and_headers) {
  fixture f;
  f.message.set("X-Token", "abc");
  http::request q = f.make(http::verb::get, "/p?a=1&flag&b=&a=2");
  BOOST_TEST(q.path() == "/p");
  BOOST_TEST(q.query() == "a=1&flag&b=&a=2");
  BOOST_TEST(q.query_parameter("a").value_or("?") == "1");
  BOOST_TEST(q.query_parameter("flag").value_or("?") == "");
  BOOST_TEST(q.query_parameter("b").value_or("?") == "");
  BOOST_TEST(!q.query_parameter("c"));
  BOOST_TEST(q.header("x-token").value_or("") == "abc");
  BOOST_TEST(!q.header(http::field::authorization));
  BOOST_TEST(q.method_string() == "GET");
}

BOOST_AUTO_TEST_CASE(response_refuses_what_would_break_the_message) {
  http::response r;
  BOOST_CHECK_THROW(r.set_status(199), std::invalid_argument);
  BOOST_CHECK_THROW(r.set_status(600), std::invalid_argument);
  BOOST_CHECK_THROW(http::response(100), std::invalid_argument);
  BOOST_CHECK_THROW(r.set_header("Bad Name", "x"), std::invalid_argument);
  BOOST_CHECK_THROW(r.set_header("X-Split", "a\r\nInjected: yes"), std::invalid_argument);
  BOOST_CHECK_THROW(r.set_header("content-length", "5"), std::invalid_argument);
  BOOST_CHECK_THROW(r.set_header("Connection", "close"), std::invalid_argument);
  BOOST_CHECK_THROW(r.set_content_type("text/plain\n"), std::invalid_argument);
  BOOST_CHECK_THROW(http::http_error(200, "not an error"), std::invalid_argument);
  r.set_header("Content-Type", "image/png").set_header("X-A", "1");
  BOOST_TEST(r.content_type() == "image/png");
  BOOST_TEST(r.header_lines() == "X-A: 1\r\n");
  r.set_content_type(http::application_json);
  BOOST_TEST(r.content_type() == "application/json");
  BOOST_TEST(r.status() == 200u);
}

BOOST_AUTO_TEST_SUITE_END()
