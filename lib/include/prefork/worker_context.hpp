// What a handler knows about the worker that runs it: identity, configuration, the
// executor, whether it is draining, and where it reports served requests. Draining is
// the runtime's business (detail/worker_drain.hpp), not a handler's.
#pragma once

#include "prefork/config.hpp"
#include "prefork/connection.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/intrusive/list.hpp>

#include <cstdint>
#include <functional>
#include <sys/types.h>

namespace prefork {

class connection;
namespace detail {
struct worker_drain;
}

/// Owned by the worker's runtime; outlives every connection it serves.
class worker_context {
 public:
  worker_context(boost::asio::any_io_executor executor, const config& cfg, int id, std::uint64_t generation);
  worker_context(const worker_context&) = delete;
  worker_context& operator=(const worker_context&) = delete;

  int id() const noexcept { return id_; }
  std::uint64_t generation() const noexcept { return generation_; }
  pid_t pid() const noexcept { return pid_; }
  const config& settings() const noexcept { return config_; }
  const boost::asio::any_io_executor& executor() const noexcept { return executor_; }

  /// True once the worker stops taking connections: handlers finish the request in
  /// flight, answer it with `Connection: close`, and end.
  bool draining() const noexcept { return draining_; }

  /// What a drain does with connections idle between requests (the worker's runtime starts
  /// the drain: detail/worker_drain.hpp).
  enum class idle_policy {
    close,       // end them (the master is stopping)
    hand_back,   // give their descriptors back to the master, for another worker (reload)
    serve_last,  // leave them: the next request on each is answered with `Connection: close`
                 // (an upgrade: the old master cannot hand them to its successor)
  };
  idle_policy drain_policy() const noexcept { return drain_policy_; }

  /// A handler calls this once per request it answered (HTTP response, echo session...).
  void count_request() noexcept { ++requests_; }
  std::uint64_t requests() const noexcept { return requests_; }

 private:
  friend class connection;
  friend struct detail::worker_drain;

  /// Takes an idle connection's descriptor (and the index of its listener) off a
  /// draining worker, to serve it elsewhere. Owns the descriptor from the call on.
  using handback_fn = std::function<void(int fd, std::uint32_t listener_index)>;

  /// Starts draining. With `close`, every connection idle in connection::wait_for_request
  /// wakes and returns wait_result::drained. With `hand_back`, each idle connection's
  /// descriptor is first released to `handback` (nothing of a next request is buffered in
  /// the handler, and whatever the client sent meanwhile stays in the kernel's buffer), so
  /// the client never sees its keep-alive connection cut. With `serve_last`, idle
  /// connections keep waiting; their next request is the last.
  void begin_drain(idle_policy policy = idle_policy::close, const handback_fn& handback = {});

  /// Under the hand_back policy, gives a connection that became idle after the drain
  /// began to the handback function; returns false when it is not handed back (another
  /// policy, no function, or the socket could not be released).
  bool hand_back(socket_type& socket, std::uint32_t listener_index);

  using idle_hook = boost::intrusive::list_member_hook<boost::intrusive::link_mode<boost::intrusive::auto_unlink>>;

  boost::asio::any_io_executor executor_;
  const config& config_;
  int id_;
  std::uint64_t generation_;
  pid_t pid_;
  bool draining_ = false;
  idle_policy drain_policy_ = idle_policy::close;
  handback_fn handback_;
  std::uint64_t requests_ = 0;

  // Connections currently idle in wait_for_request (intrusive: no allocation).
  struct idle_entry {
    idle_hook hook;
    connection* owner = nullptr;
  };
  using idle_list =
      boost::intrusive::list<idle_entry, boost::intrusive::member_hook<idle_entry, idle_hook, &idle_entry::hook>,
                             boost::intrusive::constant_time_size<false>>;
  idle_list idle_;
};

}  // namespace prefork
