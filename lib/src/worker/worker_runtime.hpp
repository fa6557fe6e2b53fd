// The worker process after fork(): a fresh io_context that receives descriptors on its
// channel, acknowledges them, serves each with the app's handler, sends heartbeats, and
// drains on TERM. Never returns: it ends the process with _exit.
#pragma once

#include "prefork/app.hpp"
#include "prefork/config.hpp"

#include <cstdint>
#include <vector>

namespace prefork::detail {

struct worker_launch {
  int channel_fd = -1;  // the worker's end of its channel; the only descriptor it keeps
  const config* settings = nullptr;
  const app* application = nullptr;
  int id = 0;
  std::uint64_t generation = 0;
  std::vector<int> listener_families;  // address family of each listener, by index
};

/// Runs the worker until it is told to stop or its master goes away, then _exit()s.
[[noreturn]] void run_worker(const worker_launch& launch);

}  // namespace prefork::detail
