// How the worker's runtime (and unit tests standing in for it) drains a worker_context:
// not part of the handler-facing API, so a handler cannot silently stop its worker.
#pragma once

#include "prefork/worker_context.hpp"

namespace prefork::detail {

struct worker_drain {
  using idle_policy = worker_context::idle_policy;
  using handback_fn = worker_context::handback_fn;

  /// worker_context::begin_drain: wakes (close), hands back (hand_back) or leaves
  /// (serve_last) the connections idle between requests; see its comment.
  static void begin(worker_context& worker, idle_policy policy = idle_policy::close, const handback_fn& handback = {}) {
    worker.begin_drain(policy, handback);
  }
};

}  // namespace prefork::detail
