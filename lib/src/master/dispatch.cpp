#include "prefork/dispatch.hpp"

#include <stdexcept>

namespace prefork {
namespace {

// The index `step` places after `start`, wrapping at `count` (start < count, step < count).
std::size_t wrapped(std::size_t start, std::size_t step, std::size_t count) noexcept {
  const std::size_t index = start + step;
  return index >= count ? index - count : index;
}

}  // namespace

std::optional<std::size_t> least_connections_policy::pick(std::span<const worker_load> workers) noexcept {
  const std::size_t count = workers.size();
  if (count == 0) return std::nullopt;
  // Modulo: the set may have shrunk since the last pick.
  const std::size_t start = next_ % count;
  std::optional<std::size_t> best;
  for (std::size_t step = 0; step < count; ++step) {
    const std::size_t index = wrapped(start, step, count);
    const worker_load& load = workers[index];
    // Strictly fewer: among equals the first one found after the last pick wins, which
    // makes ties rotate.
    if (load.accepting && (!best || load.open < workers[*best].open)) best = index;
  }
  if (best) next_ = *best + 1;
  return best;
}

std::optional<std::size_t> round_robin_policy::pick(std::span<const worker_load> workers) noexcept {
  const std::size_t count = workers.size();
  if (count == 0) return std::nullopt;
  const std::size_t start = next_ % count;
  for (std::size_t step = 0; step < count; ++step) {
    const std::size_t index = wrapped(start, step, count);
    if (workers[index].accepting) {
      next_ = index + 1;
      return index;
    }
  }
  return std::nullopt;
}

std::unique_ptr<dispatch_policy> make_dispatch_policy(dispatch_kind kind) {
  switch (kind) {
    case dispatch_kind::least_connections: return std::make_unique<least_connections_policy>();
    case dispatch_kind::round_robin: return std::make_unique<round_robin_policy>();
  }
  throw std::invalid_argument("make_dispatch_policy: unknown dispatch_kind");
}

}  // namespace prefork
