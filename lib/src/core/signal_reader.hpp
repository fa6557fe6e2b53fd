// POSIX signals as an Asio-readable signalfd. The master and each worker block the
// signals they handle and read them here, so no signal handler (and no Asio global
// signal state) survives fork() into a worker.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>

#include <initializer_list>
#include <signal.h>

namespace prefork::detail {

/// The signals prefork handles anywhere: blocked in the master before any fork, so that
/// workers inherit them blocked and read them through their own signalfd.
sigset_t handled_signals() noexcept;

/// Blocks handled_signals() in the calling thread; returns the previous mask.
sigset_t block_handled_signals();

class signal_reader {
 public:
  /// Creates a signalfd for `signals` (which must already be blocked).
  /// Throws boost::system::system_error if signalfd fails.
  signal_reader(boost::asio::any_io_executor executor, const sigset_t& signals);

  /// Waits for the next signal and returns its number; 0 when cancelled or on error.
  boost::asio::awaitable<int> next();

  void cancel() noexcept;

 private:
  boost::asio::posix::stream_descriptor descriptor_;
};

}  // namespace prefork::detail
