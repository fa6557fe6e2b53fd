#include "prefork/bind_address.hpp"

#include <boost/test/unit_test.hpp>

#include <string>

using kind = prefork::bind_address::kind;
using prefork::parse_bind_address;

namespace {

// The error message for `text`, or "" if it parsed.
std::string error_of(std::string_view text) {
  auto parsed = parse_bind_address(text);
  return parsed ? std::string() : parsed.error().message;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(bind_address)

BOOST_AUTO_TEST_CASE(unix_path) {
  auto parsed = parse_bind_address("unix:run/preforkd.sock");
  BOOST_TEST_REQUIRE(parsed.has_value());
  BOOST_TEST((parsed->type == kind::unix_path));
  BOOST_TEST(parsed->path == "run/preforkd.sock");
  BOOST_TEST(to_string(*parsed) == "unix:run/preforkd.sock");
}

BOOST_AUTO_TEST_CASE(unix_path_limits) {
  BOOST_TEST(error_of("unix:") == "\"unix:\": socket path is empty");
  const std::string longest = "unix:/" + std::string(106, 'a');
  BOOST_TEST(error_of(longest) == "");
  const std::string too_long = longest + "a";
  BOOST_TEST(error_of(too_long) == "\"" + too_long + "\": socket path is 108 bytes, the limit is 107");
  BOOST_TEST(error_of(std::string_view("unix:a\0b", 8)).find("NUL byte") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(ipv4_and_hostnames) {
  auto parsed = parse_bind_address("127.0.0.1:8000");
  BOOST_TEST_REQUIRE(parsed.has_value());
  BOOST_TEST((parsed->type == kind::tcp));
  BOOST_TEST(parsed->host == "127.0.0.1");
  BOOST_TEST(parsed->port == 8000);
  BOOST_TEST(to_string(*parsed) == "127.0.0.1:8000");

  auto any = parse_bind_address("0.0.0.0:0");
  BOOST_TEST_REQUIRE(any.has_value());
  BOOST_TEST(any->port == 0);

  auto named = parse_bind_address("localhost:65535");
  BOOST_TEST_REQUIRE(named.has_value());
  BOOST_TEST(named->host == "localhost");
  BOOST_TEST(named->port == 65535);
  BOOST_TEST(error_of("api.example-1.com:80") == "");
}

BOOST_AUTO_TEST_CASE(ipv6) {
  auto parsed = parse_bind_address("[::1]:8000");
  BOOST_TEST_REQUIRE(parsed.has_value());
  BOOST_TEST(parsed->host == "::1");
  BOOST_TEST(parsed->port == 8000);
  BOOST_TEST(to_string(*parsed) == "[::1]:8000");
  BOOST_TEST(error_of("[fe80::1%eth0]:80") == "");
  BOOST_TEST(error_of("[::ffff:10.0.0.1]:80") == "");
}

BOOST_AUTO_TEST_CASE(ipv6_errors) {
  BOOST_TEST(error_of("[::1]8000") == "\"[::1]8000\": expected [V6]:PORT");
  BOOST_TEST(error_of("[::1]") == "\"[::1]\": expected [V6]:PORT");
  BOOST_TEST(error_of("[::g]:80") == "\"[::g]:80\": invalid IPv6 address \"::g\"");
  BOOST_TEST(error_of("[]:80") == "\"[]:80\": invalid IPv6 address \"\"");
  BOOST_TEST(error_of("[fe80::1%]:80") == "\"[fe80::1%]:80\": invalid IPv6 address \"fe80::1%\"");
  BOOST_TEST(error_of("::1:80") == "\"::1:80\": an IPv6 address needs brackets, as in [::1]:8000");
}

BOOST_AUTO_TEST_CASE(host_errors) {
  BOOST_TEST(error_of(":80") == "\":80\": host is empty");
  BOOST_TEST(error_of("999.1.1.1:80") == "\"999.1.1.1:80\": invalid IPv4 address \"999.1.1.1\"");
  BOOST_TEST(error_of("1.2.3:80") == "\"1.2.3:80\": invalid IPv4 address \"1.2.3\"");
  BOOST_TEST(error_of("a b:80") == "\"a b:80\": invalid host name \"a b\"");
  BOOST_TEST(error_of("-x:80") == "\"-x:80\": invalid host name \"-x\"");
  const auto too_long_host = std::string(254, 'a') + ":80";
  BOOST_TEST(error_of(too_long_host).find("invalid host name") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(port_errors) {
  BOOST_TEST(error_of("127.0.0.1:99999") == "\"127.0.0.1:99999\": port must be 0..65535");
  BOOST_TEST(error_of("127.0.0.1:65536") == "\"127.0.0.1:65536\": port must be 0..65535");
  BOOST_TEST(error_of("127.0.0.1:-1") == "\"127.0.0.1:-1\": port must be 0..65535");
  BOOST_TEST(error_of("127.0.0.1:+80") == "\"127.0.0.1:+80\": port must be 0..65535");
  BOOST_TEST(error_of("127.0.0.1:80x") == "\"127.0.0.1:80x\": port must be 0..65535");
  BOOST_TEST(error_of("localhost:http") == "\"localhost:http\": port must be 0..65535");
  BOOST_TEST(error_of("127.0.0.1:99999999999999999999") == "\"127.0.0.1:99999999999999999999\": port must be 0..65535");
  BOOST_TEST(error_of("127.0.0.1:") == "\"127.0.0.1:\": port is missing");
  BOOST_TEST(error_of("[::1]:") == "\"[::1]:\": port is missing");
}

BOOST_AUTO_TEST_CASE(inherited_fd) {
  auto parsed = parse_bind_address("fd://3");
  BOOST_TEST_REQUIRE(parsed.has_value());
  BOOST_TEST((parsed->type == kind::inherited_fd));
  BOOST_TEST(parsed->fd == 3);
  BOOST_TEST(to_string(*parsed) == "fd://3");
  BOOST_TEST(error_of("fd://0") == "");
  for (const auto* bad : {"fd://", "fd://-1", "fd://+3", "fd://3x", "fd://x", "fd://99999999999"}) {
    BOOST_TEST(error_of(bad) == "\"" + std::string(bad) + "\": descriptor must be an integer >= 0");
  }
}

BOOST_AUTO_TEST_CASE(unrecognised_forms) {
  const std::string why = "expected unix:PATH, HOST:PORT, [V6]:PORT or fd://N";
  BOOST_TEST(error_of("") == "\"\": " + why);
  BOOST_TEST(error_of("localhost") == "\"localhost\": " + why);
  BOOST_TEST(error_of("run/preforkd.sock") == "\"run/preforkd.sock\": " + why);
}

BOOST_AUTO_TEST_CASE(to_string_round_trips) {
  for (const auto* text : {"unix:/tmp/x.sock", "unix:rel/x", "127.0.0.1:8000", "localhost:0", "[::1]:8000",
                           "[2001:db8::5]:443", "fd://3"}) {
    auto parsed = parse_bind_address(text);
    BOOST_TEST_REQUIRE(parsed.has_value(), text);
    BOOST_TEST(to_string(*parsed) == text);
    auto again = parse_bind_address(to_string(*parsed));
    BOOST_TEST_REQUIRE(again.has_value());
    BOOST_TEST((*again == *parsed));
  }
}

BOOST_AUTO_TEST_SUITE_END()
