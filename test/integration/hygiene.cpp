// Unix socket hygiene of preforkd (SPEC section 2): a stale socket file is replaced, a
// live one or a non-socket file is an error (exit 3) and left alone, and at exit the
// master removes only the socket files it created.
#include "prefork/testing.hpp"
#include "support/http_client.hpp"
#include "support/server_helpers.hpp"

#include <boost/json/serialize.hpp>
#include <boost/test/unit_test.hpp>

#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <filesystem>
#include <iterator>
#include <memory>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

using namespace prefork::test_support;
using prefork::testing::read_file;
using prefork::testing::write_file;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

constexpr auto request_timeout = 5s;
constexpr auto exit_timeout = 15s;

// A Unix stream socket bound at a path, closed (not unlinked) on destruction.
class bound_socket {
 public:
  enum class state { listening, bound_only };

  bound_socket(const fs::path& path, state how) : fd_(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) {
    if (fd_ < 0) throw std::system_error(errno, std::generic_category(), "socket");
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::string text = path.string();
    if (text.size() >= sizeof address.sun_path) throw std::runtime_error("socket path too long: " + text);
    std::memcpy(address.sun_path, text.c_str(), text.size() + 1);
    if (::bind(fd_, reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0) {
      int error = errno;
      ::close(fd_);
      throw std::system_error(error, std::generic_category(), "bind " + text);
    }
    if (how == state::listening && ::listen(fd_, 16) != 0) {
      int error = errno;
      ::close(fd_);
      throw std::system_error(error, std::generic_category(), "listen " + text);
    }
  }
  ~bound_socket() { close(); }
  bound_socket(const bound_socket&) = delete;
  bound_socket& operator=(const bound_socket&) = delete;

  void close() noexcept {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_;
};

std::optional<ino_t> inode_of(const fs::path& path) {
  struct stat info {};
  if (::lstat(path.c_str(), &info) != 0) return std::nullopt;
  return info.st_ino;
}

bool is_socket_file(const fs::path& path) {
  struct stat info {};
  return ::lstat(path.c_str(), &info) == 0 && S_ISSOCK(info.st_mode);
}

std::string lowercase(std::string text) {
  std::transform(text.begin(), text.end(), text.begin(), [](unsigned char c) { return std::tolower(c); });
  return text;
}

// The backlog (Send-Q) that `ss -lnH` reports for the listening socket at `local` (a
// Unix path or HOST:PORT), or -1 when ss does not list it.
int listen_backlog(const std::string& type_flag, const std::string& local) {
  prefork::testing::process_options options;
  options.arguments = {type_flag, "-l", "-n", "-H"};
  auto listed = prefork::testing::run("/usr/bin/ss", std::move(options), 10s);
  BOOST_REQUIRE_MESSAGE(listed.status && listed.status->code == 0, "ss failed: " << listed.err);
  std::istringstream lines(listed.out);
  for (std::string line; std::getline(lines, line);) {
    std::istringstream words(line);
    std::vector<std::string> fields{std::istream_iterator<std::string>(words), std::istream_iterator<std::string>()};
    // ... Recv-Q Send-Q Local Peer ...: for a listener Send-Q is its backlog.
    auto at = std::find(fields.begin(), fields.end(), local);
    if (at != fields.end() && at != fields.begin()) return std::stoi(*(at - 1));
  }
  return -1;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(hygiene)

BOOST_AUTO_TEST_CASE(stale_socket_file_is_replaced_and_served) {
  bool planted = false;
  auto options = boost_test_options();
  options.prepare = [&](const fs::path& dir) {
    // Bound and closed: the file stays, nobody accepts on it.
    bound_socket stale(dir / "app.sock", bound_socket::state::listening);
    stale.close();
    planted = is_socket_file(dir / "app.sock");
  };
  prefork::testing::server server(std::move(options));  // ready, or it throws
  BOOST_REQUIRE(planted);

  auto response = http_get(unix_endpoint(server), "/", request_timeout);
  BOOST_REQUIRE_MESSAGE(response.has_value(), response.error().message());
  BOOST_TEST(response->status == 200u);
  BOOST_TEST(is_socket_file(server.directory() / "app.sock"));
  // (Its inode may equal the stale one's: file systems reuse a freed inode at once.
  // Being served is the proof that the file was replaced.)
}

BOOST_AUTO_TEST_CASE(live_socket_is_address_in_use_exit_3) {
  std::unique_ptr<bound_socket> live;
  auto options = boost_test_options();
  options.wait = prefork::testing::start_wait::no_wait;
  options.prepare = [&](const fs::path& dir) {
    live = std::make_unique<bound_socket>(dir / "app.sock", bound_socket::state::listening);
  };
  prefork::testing::server server(std::move(options));
  auto live_inode = inode_of(server.directory() / "app.sock");

  auto status = server.wait_exit(exit_timeout);
  BOOST_REQUIRE_MESSAGE(status.has_value(), "preforkd did not exit on a live socket\n" << server.log_tail(40));
  BOOST_TEST(status->code == 3, status->to_string() << "\n" << server.log_tail(40));
  BOOST_TEST(lowercase(server.log_text()).find("address in use") != std::string::npos,
             "stderr does not say \"address in use\":\n"
                 << server.log_text());
  // Our socket is untouched: same file, still accepting.
  BOOST_TEST((inode_of(server.directory() / "app.sock") == live_inode));
  http_connection probe;
  auto ec = probe.connect(unix_endpoint(server), request_timeout);
  BOOST_TEST(!ec, "the live socket no longer accepts: " << ec.message());
  BOOST_TEST(wait_group_gone(server.pid()));
}

BOOST_AUTO_TEST_CASE(regular_file_at_bind_path_is_exit_3_and_kept) {
  const std::string content = "precious data\n";
  auto options = boost_test_options();
  options.wait = prefork::testing::start_wait::no_wait;
  options.prepare = [&](const fs::path& dir) { write_file(dir / "app.sock", content); };
  prefork::testing::server server(std::move(options));

  auto status = server.wait_exit(exit_timeout);
  BOOST_REQUIRE_MESSAGE(status.has_value(), "preforkd did not exit on a regular file\n" << server.log_tail(40));
  BOOST_TEST(status->code == 3, status->to_string() << "\n" << server.log_tail(40));
  BOOST_TEST(fs::is_regular_file(server.directory() / "app.sock"));
  BOOST_TEST(read_file(server.directory() / "app.sock") == content);
  BOOST_TEST(wait_group_gone(server.pid()));
}

BOOST_AUTO_TEST_CASE(socket_file_is_removed_after_term) {
  prefork::testing::server server(boost_test_options());
  BOOST_REQUIRE(is_socket_file(server.directory() / "app.sock"));

  BOOST_REQUIRE_NO_THROW(server.signal(SIGTERM));
  auto status = server.wait_exit(exit_timeout);
  BOOST_REQUIRE_MESSAGE(status.has_value(), "no exit after TERM\n" << server.log_tail(40));
  BOOST_TEST(status->code == 0, status->to_string() << "\n" << server.log_tail(40));
  BOOST_TEST(!fs::exists(fs::symlink_status(server.directory() / "app.sock")), "the socket file is still there");
  BOOST_TEST(wait_group_gone(server.pid()));
}

BOOST_AUTO_TEST_CASE(replacement_regular_file_is_not_removed_at_exit) {
  prefork::testing::server server(boost_test_options());
  const std::string content = "not yours\n";
  fs::remove(server.directory() / "app.sock");
  write_file(server.directory() / "app.sock", content);

  BOOST_REQUIRE_NO_THROW(server.signal(SIGTERM));
  auto status = server.wait_exit(exit_timeout);
  BOOST_REQUIRE_MESSAGE(status.has_value(), "no exit after TERM\n" << server.log_tail(40));
  BOOST_TEST(status->code == 0, status->to_string() << "\n" << server.log_tail(40));
  BOOST_TEST(fs::is_regular_file(server.directory() / "app.sock"));
  BOOST_TEST(read_file(server.directory() / "app.sock") == content);
  BOOST_TEST(wait_group_gone(server.pid()));
}

BOOST_AUTO_TEST_CASE(replacement_socket_is_not_removed_at_exit) {
  prefork::testing::server server(boost_test_options());
  fs::remove(server.directory() / "app.sock");
  bound_socket other(server.directory() / "app.sock", bound_socket::state::listening);
  auto other_inode = inode_of(server.directory() / "app.sock");

  BOOST_REQUIRE_NO_THROW(server.signal(SIGTERM));
  auto status = server.wait_exit(exit_timeout);
  BOOST_REQUIRE_MESSAGE(status.has_value(), "no exit after TERM\n" << server.log_tail(40));
  BOOST_TEST(status->code == 0, status->to_string() << "\n" << server.log_tail(40));
  BOOST_TEST(is_socket_file(server.directory() / "app.sock"), "another program's socket file was removed");
  BOOST_TEST((inode_of(server.directory() / "app.sock") == other_inode));
  BOOST_TEST(wait_group_gone(server.pid()));
}

BOOST_AUTO_TEST_CASE(listeners_and_the_control_socket_get_the_configured_backlog) {
  // ss shows a Unix socket by the path given to bind(2), here relative: names unique to
  // this test process keep other tests' sockets out of the match.
  const std::string service = "backlog-" + std::to_string(::getpid()) + ".sock";
  const std::string control = "backlog-" + std::to_string(::getpid()) + ".ctl";
  auto options = boost_test_options();
  options.config["backlog"] = 7;
  options.config["bind"] = boost::json::array{boost::json::string("unix:" + service), "127.0.0.1:0"};
  options.config["control"] = control;
  prefork::testing::server server(std::move(options));
  const auto status = server.status();
  std::string tcp;
  for (const auto& listener : status.at("listeners").as_array()) {
    const std::string address(listener.at("address").as_string());
    if (!address.starts_with("unix:")) tcp = address;
  }
  BOOST_REQUIRE_MESSAGE(!tcp.empty(), boost::json::serialize(status));
  BOOST_TEST(listen_backlog("-x", service) == 7);
  BOOST_TEST(listen_backlog("-x", control) == 7);
  BOOST_TEST(listen_backlog("-t", tcp) == 7);
}

BOOST_AUTO_TEST_SUITE_END()
