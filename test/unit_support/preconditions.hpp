// What a test case may need that a machine may not give (root, an IPv6 loopback, a program
// built beside preforkd). A test that cannot run is reported as skipped, with the reason,
// never counted as passed:
//   BOOST_AUTO_TEST_CASE(name, *boost::unit_test::precondition(unit_support::running_as_root{"why"}))
// Unit and integration suites share these.
#pragma once

#include <boost/test/unit_test.hpp>

#include <filesystem>
#include <netinet/in.h>
#include <string>
#include <sys/socket.h>
#include <unistd.h>

namespace prefork::unit_support {

/// Root (to switch to another user, open privileged ports...); `why` says what for.
struct running_as_root {
  const char* why;
  boost::test_tools::assertion_result operator()(boost::unit_test::test_unit_id) const {
    boost::test_tools::assertion_result result(::geteuid() == 0);
    result.message() << "skipped: needs root: " << why;
    return result;
  }
};

/// A TCP socket can bind to the IPv6 loopback (::1).
struct ipv6_loopback_available {
  boost::test_tools::assertion_result operator()(boost::unit_test::test_unit_id) const {
    const int probe = ::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in6 loopback{};
    loopback.sin6_family = AF_INET6;
    loopback.sin6_addr = in6addr_loopback;
    const bool available =
        probe >= 0 && ::bind(probe, reinterpret_cast<const sockaddr*>(&loopback), sizeof loopback) == 0;
    if (probe >= 0) ::close(probe);
    boost::test_tools::assertion_result result(available);
    result.message() << "skipped: the IPv6 loopback is not available";
    return result;
  }
};

/// A program built beside preforkd (whose path is in $PREFORKD), e.g. "kv-server".
struct program_beside_preforkd {
  const char* name;
  boost::test_tools::assertion_result operator()(boost::unit_test::test_unit_id) const {
    const char* preforkd = std::getenv("PREFORKD");
    const std::filesystem::path program =
        preforkd ? std::filesystem::path(preforkd).parent_path() / name : std::filesystem::path(name);
    boost::test_tools::assertion_result result(preforkd != nullptr && std::filesystem::exists(program));
    result.message() << "skipped: " << (preforkd ? program.string() + " is missing" : "PREFORKD is not set");
    return result;
  }
};

}  // namespace prefork::unit_support
