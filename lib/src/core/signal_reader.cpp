#include "core/signal_reader.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/system/system_error.hpp>

#include <cerrno>
#include <sys/signalfd.h>
#include <unistd.h>

namespace prefork::detail {

namespace asio = boost::asio;

sigset_t handled_signals() noexcept {
  sigset_t set;
  sigemptyset(&set);
  for (int sig : {SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGTTIN, SIGTTOU, SIGUSR1, SIGUSR2}) sigaddset(&set, sig);
  return set;
}

sigset_t block_handled_signals() {
  sigset_t set = handled_signals();
  sigset_t previous;
  ::sigprocmask(SIG_BLOCK, &set, &previous);
  return previous;
}

namespace {
int open_signalfd(const sigset_t& signals) {
  int fd = ::signalfd(-1, &signals, SFD_NONBLOCK | SFD_CLOEXEC);
  if (fd < 0) throw boost::system::system_error(errno, boost::system::system_category(), "signalfd");
  return fd;
}
}  // namespace

signal_reader::signal_reader(asio::any_io_executor executor, const sigset_t& signals)
    : descriptor_(std::move(executor), open_signalfd(signals)) {}

asio::awaitable<int> signal_reader::next() {
  for (;;) {
    signalfd_siginfo info;
    ssize_t n = ::read(descriptor_.native_handle(), &info, sizeof info);
    if (n == static_cast<ssize_t>(sizeof info)) co_return static_cast<int>(info.ssi_signo);
    if (n < 0 && errno != EAGAIN && errno != EINTR) co_return 0;
    auto [ec] =
        co_await descriptor_.async_wait(asio::posix::stream_descriptor::wait_read, asio::as_tuple(asio::use_awaitable));
    if (ec) co_return 0;
  }
}

void signal_reader::cancel() noexcept {
  boost::system::error_code ignored;
  descriptor_.cancel(ignored);
}

}  // namespace prefork::detail
