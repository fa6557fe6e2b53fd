// prefork::testing::http_session against a scripted peer (a fake server on a Unix socket
// whose every byte a test chooses): the request on the wire (headers in order, Host and
// Content-Length, a malformed request refused before anything is sent), interim responses,
// `Expect: 100-continue` (the 100, a final answer instead, a server that ignores it),
// connection reuse as a test sees it, the retry of a GET on a stale connection and no
// retry of a POST, and http_response::json().
#include "prefork/testing/http_session.hpp"

#include "unit_support/temp_dir.hpp"
#include "unit_support/unix_listener.hpp"

#include <boost/json/parse.hpp>
#include <boost/test/unit_test.hpp>

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using prefork::testing::http_request;
using prefork::testing::http_response;
using client_session = prefork::testing::http_session;
using steady = std::chrono::steady_clock;

namespace {

/// A fake HTTP server on a Unix socket, driven by a script on its own thread. Every wait
/// of the script is bounded (peer_wait), so a failing client cannot hang the test; the
/// script reports problems with fail() (Boost.Test's macros are for the test's thread),
/// checked by finish().
class scripted_peer {
 public:
  static constexpr auto peer_wait = 5s;

  explicit scripted_peer(std::function<void(scripted_peer&)> script)
      : listener_(prefork::unit_support::open_unix_listener(dir_ / "peer.sock")),
        thread_([this, script = std::move(script)] { run(script); }) {}
  ~scripted_peer() {
    if (thread_.joinable()) thread_.join();
    close_connection();
    ::close(listener_);
  }
  scripted_peer(const scripted_peer&) = delete;
  scripted_peer& operator=(const scripted_peer&) = delete;

  std::string address() const { return "unix:" + (dir_ / "peer.sock"); }

  /// Waits for the script to end; then received(), accepted() and the failures are stable.
  void finish() {
    thread_.join();
    for (const auto& failure : failures_) BOOST_ERROR("peer: " << failure);
  }
  /// Waits (bounded) until the script has passed mark(n).
  void wait_for_mark(int n) const {
    const auto deadline = steady::now() + peer_wait;
    while (mark_.load() < n && steady::now() < deadline) std::this_thread::sleep_for(1ms);
    BOOST_REQUIRE_MESSAGE(mark_.load() >= n, "the peer never reached mark " << n);
  }
  /// Everything read from clients so far, in order.
  const std::string& received() const { return received_; }
  int accepted() const { return accepted_; }

  // --- for the script ------------------------------------------------------------------

  void fail(std::string what) { failures_.push_back(std::move(what)); }
  void mark(int n) { mark_.store(n); }

  /// Accepts the next connection (closing the current one) within `wait`; false when none came.
  bool accept(std::chrono::milliseconds wait = peer_wait) {
    close_connection();
    if (!readable(listener_, wait)) return false;
    connection_ = ::accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
    if (connection_ < 0) fail("accept failed");
    accepted_ += connection_ >= 0;
    return connection_ >= 0;
  }
  /// Reads until the end of a request header ("\r\n\r\n") and returns the header.
  std::string read_head() {
    std::string head;
    while (head.find("\r\n\r\n") == std::string::npos) {
      char c = 0;
      if (!read_byte(c, peer_wait)) {
        fail("no complete request header; got: " + head);
        break;
      }
      head += c;
    }
    return head;
  }
  /// Reads exactly `size` bytes (a body).
  std::string read_bytes(std::size_t size, std::chrono::milliseconds wait = peer_wait) {
    std::string bytes;
    char c = 0;
    while (bytes.size() < size && read_byte(c, wait)) bytes += c;
    if (bytes.size() < size) fail("expected " + std::to_string(size) + " bytes; got: " + bytes);
    return bytes;
  }
  /// Whether the client sends nothing within `wait` (and has not closed).
  bool silent_for(std::chrono::milliseconds wait) { return !readable(connection_, wait); }
  /// Whether the client closed its side (EOF) within the peer's wait, sending nothing more.
  bool client_closed() {
    char c = 0;
    return !readable(connection_, peer_wait) ? false : ::recv(connection_, &c, 1, 0) == 0;
  }
  void send(std::string_view bytes) {
    if (::send(connection_, bytes.data(), bytes.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(bytes.size()))
      fail("short send");
  }
  void close_connection() {
    if (connection_ >= 0) ::close(connection_);
    connection_ = -1;
  }

 private:
  static bool readable(int fd, std::chrono::milliseconds wait) {
    pollfd entry{fd, POLLIN, 0};
    return ::poll(&entry, 1, static_cast<int>(wait.count())) == 1;
  }
  bool read_byte(char& c, std::chrono::milliseconds wait) {
    if (!readable(connection_, wait) || ::recv(connection_, &c, 1, 0) != 1) return false;
    received_ += c;
    return true;
  }
  void run(const std::function<void(scripted_peer&)>& script) {
    try {
      script(*this);
    } catch (const std::exception& e) {
      fail(e.what());
    }
  }

  prefork::unit_support::temp_dir dir_;
  int listener_;
  int connection_ = -1;
  int accepted_ = 0;
  std::string received_;
  std::vector<std::string> failures_;
  std::atomic<int> mark_{0};
  std::thread thread_;
};

std::string ok(std::string_view body, std::string_view extra_fields = "") {
  return "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(body.size()) + "\r\n" + std::string(extra_fields) +
         "\r\n" + std::string(body);
}

// A session that must not reach any server.
client_session unreachable() { return client_session("unix:/nonexistent/prefork-none.sock", 1s); }

}  // namespace

BOOST_AUTO_TEST_SUITE(http_session)

BOOST_AUTO_TEST_CASE(headers_go_out_in_order_after_host_and_length) {
  scripted_peer peer([](scripted_peer& p) {
    if (!p.accept()) return p.fail("no connection");
    for (int i = 0; i < 4; ++i) {
      auto head = p.read_head();
      const auto length = head.find("Content-Length: ");
      if (length != std::string::npos) p.read_bytes(std::stoul(head.substr(length + 16)));
      p.send(ok("{}"));
    }
  });
  client_session session(peer.address());
  session.get("/a?b=c", {{"X-One", "1"}, {"x-two", "two words"}, {"X-One", "again"}});
  session.post("/p", "abc", "text/csv", {{"Authorization", "Bearer t"}});
  session.post_json("/j", {{"a", 1}});
  session.request({.method = "PATCH", .target = "*", .headers = {{"Host", "example.org"}}});
  peer.finish();
  BOOST_TEST(peer.received() ==
             "GET /a?b=c HTTP/1.1\r\nHost: localhost\r\nX-One: 1\r\nx-two: two words\r\nX-One: again\r\n\r\n"
             "POST /p HTTP/1.1\r\nHost: localhost\r\nContent-Length: 3\r\nContent-Type: text/csv\r\n"
             "Authorization: Bearer t\r\n\r\nabc"
             "POST /j HTTP/1.1\r\nHost: localhost\r\nContent-Length: 7\r\nContent-Type: application/json\r\n\r\n"
             "{\"a\":1}"
             "PATCH * HTTP/1.1\r\nContent-Length: 0\r\nHost: example.org\r\n\r\n");
  BOOST_TEST(session.connections() == 1u);
}

BOOST_AUTO_TEST_CASE(a_content_type_among_the_headers_replaces_posts_own) {
  scripted_peer peer([](scripted_peer& p) {
    if (!p.accept()) return p.fail("no connection");
    p.read_head();
    p.read_bytes(1);
    p.send(ok(""));
  });
  client_session session(peer.address());
  session.post("/", "x", "text/plain", {{"content-type", "image/png"}});
  peer.finish();
  BOOST_TEST(peer.received() ==
             "POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1\r\ncontent-type: image/png\r\n\r\nx");
}

BOOST_AUTO_TEST_CASE(a_malformed_request_is_refused_before_anything_is_sent) {
  auto session = unreachable();
  auto refused = [&](http_request request) { BOOST_CHECK_THROW(session.try_request(request), std::invalid_argument); };
  refused({.headers = {{"X-Bad", "a\r\nInjected: yes"}}});
  refused({.headers = {{"X-Bad", "line\nbreak"}}});
  refused({.headers = {{"X-Bad", std::string("nul\0byte", 8)}}});
  refused({.headers = {{"X-Bad\r\nInjected", "yes"}}});
  refused({.headers = {{"X Bad", "space in the name"}}});
  refused({.headers = {{"", "no name"}}});
  refused({.method = "G ET"});
  refused({.method = ""});
  refused({.target = "/a b"});
  refused({.target = "/a\r\n"});
  refused({.target = ""});
  BOOST_CHECK_THROW(session.get("/", {{"X-Bad", "a\rb"}}), std::invalid_argument);
  BOOST_CHECK_THROW(session.post("/", "x", "text/plain\r\nX: y"), std::invalid_argument);
  try {
    session.get("/", {{"X-Bad", "a\r\nb"}});
  } catch (const std::invalid_argument& e) {
    BOOST_TEST(e.what() == std::string("header X-Bad: the value \"a\\r\\nb\" holds CR, LF or NUL"));
  }
  BOOST_TEST(session.connections() == 0u);  // nothing was even connected
  // Fields a parser would accept are sent: an empty value, tabs, bytes above 0x7f.
  BOOST_TEST(!session.try_request({.headers = {{"X-Empty", ""}, {"X-Tab", "a\tb"}, {"X-Utf8", "é"}}}).has_value());
}

BOOST_AUTO_TEST_CASE(each_response_says_whether_it_came_on_a_reused_connection) {
  scripted_peer peer([](scripted_peer& p) {
    if (!p.accept()) return p.fail("no connection");
    p.read_head();
    p.send(ok("1"));
    p.read_head();
    p.send(ok("2", "Connection: close\r\n"));
    if (!p.client_closed()) p.fail("the client kept a connection the server closes");
    if (!p.accept()) return p.fail("no second connection");
    p.read_head();
    p.send(ok("3"));
  });
  client_session session(peer.address());
  BOOST_TEST(session.connections() == 0u);  // connects lazily
  auto first = session.get("/");
  BOOST_TEST(!first.reused);
  BOOST_TEST(session.connections() == 1u);
  auto second = session.get("/");
  BOOST_TEST(second.reused);
  BOOST_TEST(second.header("Connection").value_or("") == "close");
  auto third = session.get("/");
  BOOST_TEST(!third.reused);
  BOOST_TEST(third.body == "3");
  BOOST_TEST(session.connections() == 2u);
  peer.finish();
}

BOOST_AUTO_TEST_CASE(interim_responses_are_listed_and_skipped) {
  scripted_peer peer([](scripted_peer& p) {
    if (!p.accept()) return p.fail("no connection");
    p.read_head();
    p.send("HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n");
    p.send("HTTP/1.1 102 Processing\r\n\r\n");
    p.send(ok("done"));
    p.read_head();
    p.send(ok("next"));
  });
  client_session session(peer.address());
  auto response = session.get("/");
  BOOST_TEST(response.status == 200u);
  BOOST_TEST(response.body == "done");
  BOOST_TEST((response.interim == std::vector<unsigned>{103, 102}));
  auto next = session.get("/");  // nothing of the first exchange is left to read
  BOOST_TEST(next.body == "next");
  BOOST_TEST(next.interim.empty());
  peer.finish();
}

BOOST_AUTO_TEST_CASE(expect_continue_sends_the_body_after_the_100) {
  scripted_peer peer([](scripted_peer& p) {
    if (!p.accept()) return p.fail("no connection");
    p.read_head();
    if (!p.silent_for(300ms)) p.fail("the body came before the 100");
    p.send("HTTP/1.1 100 Continue\r\n\r\n");
    p.send(ok(p.read_bytes(5)));
  });
  client_session session(peer.address());
  auto response = session.post("/", "hello", "text/plain", {{"Expect", "100-continue"}});
  BOOST_TEST(response.body == "hello");
  BOOST_TEST((response.interim == std::vector<unsigned>{100}));
  peer.finish();
}

BOOST_AUTO_TEST_CASE(a_final_answer_to_expect_continue_leaves_the_body_unsent) {
  scripted_peer peer([](scripted_peer& p) {
    if (!p.accept()) return p.fail("no connection");
    p.read_head();
    p.send("HTTP/1.1 413 Content Too Large\r\nContent-Length: 0\r\n\r\n");
    // The client closes rather than leave the server guessing whether a body follows.
    if (!p.client_closed()) p.fail("the client sent the body or kept the connection");
    if (!p.accept()) return p.fail("no second connection");
    p.read_head();
    p.send(ok(""));
  });
  client_session session(peer.address());
  auto response = session.post("/", std::string(100, 'x'), "text/plain", {{"expect", "100-Continue"}});
  BOOST_TEST(response.status == 413u);
  BOOST_TEST(response.interim.empty());
  BOOST_TEST(session.get("/").status == 200u);
  BOOST_TEST(session.connections() == 2u);
  peer.finish();
  BOOST_TEST(peer.received().find("xxx") == std::string::npos);
}

BOOST_AUTO_TEST_CASE(a_server_that_ignores_expect_continue_gets_the_body_after_a_second) {
  scripted_peer peer([](scripted_peer& p) {
    if (!p.accept()) return p.fail("no connection");
    p.read_head();
    p.send(ok(p.read_bytes(2)));
  });
  client_session session(peer.address());
  const auto started = steady::now();
  auto response = session.post("/", "hi", "text/plain", {{"Expect", "100-continue"}});
  const auto waited = steady::now() - started;
  BOOST_TEST(response.body == "hi");
  BOOST_TEST(response.interim.empty());
  BOOST_TEST((waited >= 900ms && waited < 4s), std::chrono::duration_cast<std::chrono::milliseconds>(waited).count()
                                                   << " ms");
  peer.finish();
}

BOOST_AUTO_TEST_CASE(a_get_on_a_stale_connection_is_sent_again_on_a_new_one) {
  scripted_peer peer([](scripted_peer& p) {
    if (!p.accept()) return p.fail("no connection");
    p.read_head();
    p.send(ok("first"));
    p.close_connection();  // an idle timeout, a worker that died
    p.mark(1);
    if (!p.accept()) return p.fail("no second connection");
    p.read_head();
    p.send(ok("again"));
  });
  client_session session(peer.address());
  BOOST_TEST(session.get("/").body == "first");
  peer.wait_for_mark(1);
  auto response = session.get("/");
  BOOST_TEST(response.body == "again");
  BOOST_TEST(!response.reused);
  BOOST_TEST(session.connections() == 2u);  // the retry shows
  peer.finish();
}

BOOST_AUTO_TEST_CASE(a_post_on_a_stale_connection_is_reported_not_sent_again) {
  scripted_peer peer([](scripted_peer& p) {
    if (!p.accept()) return p.fail("no connection");
    p.read_head();
    p.send(ok("first"));
    p.close_connection();
    p.mark(1);
    if (p.accept(500ms)) p.fail("the POST was sent again on a new connection");
  });
  client_session session(peer.address());
  BOOST_TEST(session.get("/").body == "first");
  peer.wait_for_mark(1);
  auto posted = session.try_request({.method = "POST", .target = "/", .body = "once"});
  BOOST_REQUIRE(!posted.has_value());
  BOOST_TEST_MESSAGE("the POST failed with: " << posted.error().message());
  BOOST_TEST(session.connections() == 1u);
  peer.finish();
  BOOST_TEST(peer.accepted() == 1);
  // A POST's failure throws from post(), naming the request.
  scripted_peer second([](scripted_peer& p) {
    if (!p.accept()) return p.fail("no connection");
    p.read_head();
    p.send(ok("first"));
    p.close_connection();
    p.mark(1);
  });
  client_session other(second.address());
  other.get("/");
  second.wait_for_mark(1);
  BOOST_CHECK_EXCEPTION(other.post("/orders", "x"), std::runtime_error, [&](const std::runtime_error& e) {
    BOOST_TEST_MESSAGE(e.what());
    return std::string(e.what()).starts_with("POST /orders on " + second.address() + ": ");
  });
  second.finish();
}

BOOST_AUTO_TEST_CASE(json_parses_the_body_or_says_what_it_was) {
  http_response response{.status = 200, .body = R"({"sum": 3, "list": [1, 2]})"};
  BOOST_TEST(response.json().at("sum").to_number<int>() == 3);
  response = {.status = 502, .body = "<html>Bad Gateway</html>\r\n"};
  BOOST_CHECK_EXCEPTION(response.json(), std::runtime_error, [](const std::runtime_error& e) {
    const std::string message = e.what();
    BOOST_TEST_MESSAGE(message);
    return message.starts_with("response 502 is not JSON (") &&
           message.ends_with("body \"<html>Bad Gateway</html>\\r\\n\"");
  });
  response = {.status = 204};
  BOOST_CHECK_EXCEPTION(response.json(), std::runtime_error, [](const std::runtime_error& e) {
    return std::string(e.what()).find("response 204 is not JSON") == 0 && std::string(e.what()).ends_with("empty body");
  });
  response = {.status = 200, .body = std::string(1000, '[')};
  BOOST_CHECK_EXCEPTION(response.json(), std::runtime_error, [](const std::runtime_error& e) {
    return std::string(e.what()).ends_with("... (1000 bytes)\"");
  });
}

BOOST_AUTO_TEST_SUITE_END()
