// Where the master sends each new connection: a pluggable policy over what it knows of
// its workers (accepting or not, open connections). Pure decision code, no I/O.
#pragma once

#include "prefork/config.hpp"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>

namespace prefork {

/// What the master knows of one worker when choosing where a new connection goes.
struct worker_load {
  /// The worker is ready (not starting, paused or draining) and holds fewer than
  /// `worker_connections` open connections.
  bool accepting = false;
  /// Connections the master believes the worker holds open (from its acknowledgements
  /// and close reports).
  std::uint32_t open = 0;
};

/// Chooses a worker for each new connection. Called on the master's hot path, once per
/// accepted connection: implementations must not allocate, block or throw. The span may
/// change size between calls (workers start and exit); a policy keeps no index into it
/// that it does not re-check against the current size.
class dispatch_policy {
 public:
  virtual ~dispatch_policy() = default;

  /// Index into `workers` of the chosen one, or std::nullopt when none is accepting
  /// (then the master stops accepting until a worker can take a connection).
  /// A returned index always refers to an accepting worker.
  virtual std::optional<std::size_t> pick(std::span<const worker_load> workers) noexcept = 0;
};

/// The accepting worker with the fewest open connections; ties are broken round-robin
/// (the search starts just after the last pick), so equally loaded workers alternate.
class least_connections_policy final : public dispatch_policy {
 public:
  std::optional<std::size_t> pick(std::span<const worker_load> workers) noexcept override;

 private:
  std::size_t next_ = 0;  // where the next search starts (taken modulo the current size)
};

/// The next accepting worker after the last pick, wrapping around; open counts are ignored.
class round_robin_policy final : public dispatch_policy {
 public:
  std::optional<std::size_t> pick(std::span<const worker_load> workers) noexcept override;

 private:
  std::size_t next_ = 0;  // where the next search starts (taken modulo the current size)
};

/// The built-in policy for `kind` (the config's `dispatch` key).
/// Throws std::invalid_argument for a value outside dispatch_kind (a programming error).
std::unique_ptr<dispatch_policy> make_dispatch_policy(dispatch_kind kind);

}  // namespace prefork
