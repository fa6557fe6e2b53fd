#include "net/fd_limits.hpp"

#include "unit_support/child_exit.hpp"

#include <boost/test/unit_test.hpp>

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <fstream>
#include <signal.h>
#include <thread>

namespace {

using prefork::detail::count_open_descriptors;
using prefork::detail::list_open_descriptors;
using prefork::detail::raise_open_file_limit;

std::size_t count_self() {
  auto count = count_open_descriptors(::getpid());
  BOOST_REQUIRE_MESSAGE(count, count.error().message());
  return *count;
}

// A pid that no process can have: pids are below kernel.pid_max.
pid_t impossible_pid() {
  std::ifstream file("/proc/sys/kernel/pid_max");
  pid_t pid_max = 4194304;
  file >> pid_max;
  return pid_max;
}

using prefork::unit_support::wait_bounded;

}  // namespace

BOOST_AUTO_TEST_SUITE(fd_limits)

BOOST_AUTO_TEST_CASE(raise_sets_soft_limit_to_hard_limit) {
  auto raised = raise_open_file_limit();
  BOOST_REQUIRE_MESSAGE(raised, raised.error().message());
  rlimit limit{};
  BOOST_REQUIRE(::getrlimit(RLIMIT_NOFILE, &limit) == 0);
  BOOST_TEST(*raised == limit.rlim_cur);
  if (limit.rlim_max != RLIM_INFINITY) BOOST_TEST(limit.rlim_cur == limit.rlim_max);
}

BOOST_AUTO_TEST_CASE(raise_lifts_a_low_soft_limit) {
  // In a child: lowering the hard limit cannot be undone.
  const pid_t child = ::fork();
  BOOST_REQUIRE(child >= 0);
  if (child == 0) {
    const rlimit low{256, 512};
    if (::setrlimit(RLIMIT_NOFILE, &low) != 0) ::_exit(2);
    auto raised = raise_open_file_limit();
    rlimit now{};
    ::getrlimit(RLIMIT_NOFILE, &now);
    ::_exit(raised && *raised == 512 && now.rlim_cur == 512 && now.rlim_max == 512 ? 0 : 1);
  }
  BOOST_TEST(wait_bounded(child) == 0);
}

BOOST_AUTO_TEST_CASE(count_follows_opened_and_closed_descriptors) {
  const std::size_t before = count_self();
  std::array<int, 3> sockets{};
  for (int& fd : sockets) {
    fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    BOOST_REQUIRE(fd >= 0);
  }
  BOOST_TEST(count_self() == before + 3);
  BOOST_TEST(list_open_descriptors(::getpid()).size() == before + 3);
  for (const int fd : sockets) ::close(fd);
  BOOST_TEST(count_self() == before);
}

BOOST_AUTO_TEST_CASE(list_names_targets_sorted_without_its_own_descriptor) {
  const int null_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  const int socket_fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  BOOST_REQUIRE(null_fd >= 0);
  BOOST_REQUIRE(socket_fd >= 0);
  const auto listed = list_open_descriptors(::getpid());
  const auto target_of = [&](int fd) -> std::string {
    for (const auto& [number, target] : listed)
      if (number == fd) return target;
    return "<missing>";
  };
  BOOST_TEST(target_of(null_fd) == "/dev/null");
  BOOST_TEST(target_of(socket_fd).rfind("socket:[", 0) == 0u);
  BOOST_TEST(std::is_sorted(listed.begin(), listed.end()));
  // Every listed descriptor is still open: the one used to read /proc is not listed.
  for (const auto& [fd, target] : listed) BOOST_TEST(::fcntl(fd, F_GETFD) != -1, fd << " " << target);
  ::close(null_fd);
  ::close(socket_fd);
}

BOOST_AUTO_TEST_CASE(count_of_another_process) {
  int pipe_ends[2];
  BOOST_REQUIRE(::pipe2(pipe_ends, O_CLOEXEC) == 0);
  const std::size_t parent_count = count_self();
  const pid_t child = ::fork();
  BOOST_REQUIRE(child >= 0);
  if (child == 0) {
    char byte = 0;
    // Waits until the parent has looked and writes a byte (no EOF: we hold the write end).
    ::_exit(::read(pipe_ends[0], &byte, 1) == 1 ? 0 : 1);
  }
  auto counted = count_open_descriptors(child);
  const auto listed = list_open_descriptors(child);
  const char go = 'x';
  BOOST_TEST(::write(pipe_ends[1], &go, 1) == 1);
  BOOST_TEST(wait_bounded(child) == 0);
  ::close(pipe_ends[0]);
  ::close(pipe_ends[1]);
  BOOST_REQUIRE_MESSAGE(counted, counted.error().message());
  BOOST_TEST(*counted == parent_count);  // the child inherited exactly our descriptors
  BOOST_TEST(listed.size() == parent_count);
}

BOOST_AUTO_TEST_CASE(missing_process_is_an_error) {
  auto counted = count_open_descriptors(impossible_pid());
  BOOST_TEST(!counted);
  if (!counted) BOOST_TEST(counted.error() == boost::system::errc::no_such_file_or_directory);
  BOOST_TEST(list_open_descriptors(impossible_pid()).empty());
}

BOOST_AUTO_TEST_CASE(worker_capacity_leaves_room_for_the_workers_own_descriptors) {
  using prefork::detail::worker_connection_capacity;
  BOOST_TEST(worker_connection_capacity(RLIM_INFINITY) == UINT64_MAX);
  BOOST_TEST(worker_connection_capacity(1048576) == 1048576u - 64u);
  BOOST_TEST(worker_connection_capacity(256) == 192u);
  BOOST_TEST(worker_connection_capacity(64) == 48u);  // a quarter kept under 256
  BOOST_TEST(worker_connection_capacity(4) == 3u);
  BOOST_TEST(worker_connection_capacity(1) == 1u);  // never 0: a worker must take something
  BOOST_TEST(worker_connection_capacity(0) == 1u);
}

BOOST_AUTO_TEST_SUITE_END()
