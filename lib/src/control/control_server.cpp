#include "control/control_server.hpp"

#include "prefork/log.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/json/value.hpp>

#include <cerrno>
#include <cstring>
#include <exception>
#include <fcntl.h>
#include <list>
#include <optional>
#include <string>
#include <sys/socket.h>
#include <unistd.h>

namespace prefork::detail {

namespace asio = boost::asio;
namespace json = boost::json;
using namespace asio::experimental::awaitable_operators;
using steady = std::chrono::steady_clock;

namespace {

// Bytes asked of each read: requests are small, a larger one just takes more reads.
constexpr std::size_t read_chunk = 4096;
// How long accepting pauses after EMFILE/ENFILE or an unexpected error, instead of spinning.
constexpr std::chrono::milliseconds accept_pause{100};

struct session {
  session(asio::any_io_executor executor, int fd) : socket(executor), timer(executor) {
    boost::system::error_code ec;
    socket.assign(asio::local::stream_protocol(), fd, ec);
    if (ec) {
      ::close(fd);
      assign_error = ec;
    }
  }

  asio::local::stream_protocol::socket socket;
  asio::steady_timer timer;  // the one deadline of whatever the session waits for
  boost::system::error_code assign_error;
  bool serving = false;  // counts toward max_connections
  std::int64_t peer_pid = 0;
  std::list<std::shared_ptr<session>>::iterator position;
};

using session_ptr = std::shared_ptr<session>;

}  // namespace

struct control_server::state {
  state(asio::any_io_executor executor_, int listening_fd, control_target& target_, control_server_options options_)
      : executor(executor_),
        listener(executor_, listening_fd),
        target(&target_),
        options(options_),
        pause_timer(executor_) {}

  asio::any_io_executor executor;
  asio::posix::stream_descriptor listener;  // readable when a connection waits; accept4 takes it
  control_target* target;
  control_server_options options;
  std::list<session_ptr> sessions;
  std::size_t serving = 0;
  asio::steady_timer pause_timer;
  bool started = false;
  bool closed = false;
};

namespace {

using state_ptr = std::shared_ptr<control_server::state>;

// Unregisters a session and closes its socket when its coroutine ends, however it ends
// (returned, threw, or destroyed with the io_context).
struct session_guard {
  state_ptr server;
  session_ptr connection;

  session_guard(state_ptr s, session_ptr c) : server(std::move(s)), connection(std::move(c)) {}
  session_guard(const session_guard&) = delete;
  session_guard& operator=(const session_guard&) = delete;
  ~session_guard() {
    boost::system::error_code ignored;
    connection->socket.close(ignored);
    if (connection->serving) --server->serving;
    server->sessions.erase(connection->position);
  }
};

void log_task_failure(std::exception_ptr error) {
  if (!error) return;
  try {
    std::rethrow_exception(error);
  } catch (const std::exception& e) {
    log_error("control connection failed", {{"error", e.what()}});
  } catch (...) {
    log_error("control connection failed", {{"error", "unknown exception"}});
  }
}

bool is_mutating(control_command command) {
  switch (command) {
    case control_command::ping:
    case control_command::status:
    case control_command::workers:
    case control_command::stats:
    case control_command::config: return false;
    default: return true;
  }
}

std::string reply_for(const result<void>& outcome) {
  return outcome ? serialize_ok_reply(json::object{}) : serialize_error_reply(outcome.error());
}

// Runs every command but `reload` (which may wait) and returns its reply line.
std::string execute(control_target& target, const control_request& request) {
  switch (request.command) {
    case control_command::ping: return serialize_ok_reply("pong");
    case control_command::status: return serialize_ok_reply(target.status());
    case control_command::workers: return serialize_ok_reply(target.workers());
    case control_command::stats: return serialize_ok_reply(target.stats());
    case control_command::config: return serialize_ok_reply(target.effective_config());
    case control_command::scale: return serialize_ok_reply(json::object{{"desired", target.scale(request.workers)}});
    case control_command::stop: return serialize_ok_reply(json::object{});  // stopped once written
    case control_command::kill_worker: {
      auto pid = target.kill_worker(request.worker_id, request.signal);
      return pid ? serialize_ok_reply(json::object{{"pid", *pid}}) : serialize_error_reply(pid.error());
    }
    case control_command::pause_worker: return reply_for(target.pause_worker(request.worker_id));
    case control_command::resume_worker: return reply_for(target.resume_worker(request.worker_id));
    case control_command::reopen_logs: return reply_for(target.reopen_logs());
    case control_command::reload: break;
  }
  return serialize_error_reply({errc::bad_request, "command not handled"});
}

// Writes one reply under the write deadline; false when the connection is done for.
asio::awaitable<bool> write_reply(state_ptr server, session_ptr connection, std::string reply) {
  connection->timer.expires_after(server->options.write_timeout);
  auto outcome =
      co_await (asio::async_write(connection->socket, asio::buffer(reply), asio::as_tuple(asio::use_awaitable)) ||
                connection->timer.async_wait(asio::as_tuple(asio::use_awaitable)));
  if (server->closed) co_return false;
  if (outcome.index() == 1) {
    log_warning("control client does not read its replies; closing the connection",
                {{"pid", connection->peer_pid}, {"reply_bytes", reply.size()}});
    co_return false;
  }
  auto [ec, written] = std::get<0>(outcome);
  if (ec) log_debug("control reply not written", {{"pid", connection->peer_pid}, {"error", ec.message()}});
  co_return !ec;
}

// Answers one request line (or too_large event); false when the connection is done for.
asio::awaitable<bool> answer(state_ptr server, session_ptr connection, std::optional<control_request> request,
                             std::string reply) {
  if (request) {
    const std::string_view name = to_string(request->command);
    if (is_mutating(request->command))
      log_info("control request", {{"cmd", name}, {"pid", connection->peer_pid}});
    else
      log_debug("control request", {{"cmd", name}, {"pid", connection->peer_pid}});
    if (request->command == control_command::reload) {
      auto generation = co_await server->target->reload(request->wait);
      if (server->closed) co_return false;
      reply = generation ? serialize_ok_reply(json::object{{"generation", *generation}})
                         : serialize_error_reply(generation.error());
    } else {
      reply = execute(*server->target, *request);
    }
  }
  const bool written = co_await write_reply(server, connection, std::move(reply));
  // `stop` takes effect once its reply is out (or can no longer go out): the client knows.
  if (request && request->command == control_command::stop && !server->closed) server->target->stop(request->stop);
  co_return written && !server->closed;
}

asio::awaitable<void> run_session(state_ptr server, session_ptr connection) {
  session_guard guard(server, connection);
  control_line_reader reader(server->options.max_line);
  auto deadline = steady::now() + server->options.idle_timeout;
  for (;;) {
    while (auto event = reader.next()) {
      std::optional<control_request> request;
      std::string reply;
      if (event->kind == control_line_reader::event_kind::too_large) {
        reply = serialize_error_reply(
            {errc::too_large, "request line longer than " + std::to_string(server->options.max_line) + " bytes"});
      } else if (auto parsed = parse_control_request(event->line)) {
        request = *parsed;
      } else {
        reply = serialize_error_reply(parsed.error());
      }
      if (!co_await answer(server, connection, request, std::move(reply))) co_return;
      deadline = steady::now() + server->options.idle_timeout;
    }

    std::span<char> space = reader.prepare(read_chunk);
    connection->timer.expires_at(deadline);
    auto outcome = co_await (connection->socket.async_read_some(asio::buffer(space.data(), space.size()),
                                                                asio::as_tuple(asio::use_awaitable)) ||
                             connection->timer.async_wait(asio::as_tuple(asio::use_awaitable)));
    if (server->closed) co_return;
    if (outcome.index() == 1) {
      log_debug("control connection idle; closing", {{"pid", connection->peer_pid}});
      co_return;
    }
    auto [ec, received] = std::get<0>(outcome);
    if (ec) {
      if (ec != asio::error::eof && ec != asio::error::connection_reset)
        log_debug("control connection read failed", {{"pid", connection->peer_pid}, {"error", ec.message()}});
      co_return;
    }
    reader.commit(received);
  }
}

// Sends one error line to a connection we do not serve, then closes it.
asio::awaitable<void> run_refusal(state_ptr server, session_ptr connection, std::string reply) {
  session_guard guard(server, connection);
  if (co_await write_reply(server, connection, std::move(reply))) {
    boost::system::error_code ignored;
    connection->socket.shutdown(asio::socket_base::shutdown_send, ignored);
  }
}

void start_session(const state_ptr& server, int fd) {
  auto connection = std::make_shared<session>(server->executor, fd);
  if (connection->assign_error) {
    log_error("control connection not served", {{"error", connection->assign_error.message()}});
    return;
  }
  server->sessions.push_front(connection);
  connection->position = server->sessions.begin();

  ucred peer{};
  socklen_t length = sizeof peer;
  bool known = ::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &peer, &length) == 0;
  connection->peer_pid = known ? peer.pid : 0;
  if (!known || (peer.uid != ::geteuid() && peer.uid != 0)) {
    if (known)
      log_warning("control connection forbidden", {{"uid", peer.uid}, {"pid", peer.pid}});
    else
      log_warning("control connection forbidden: peer credentials unknown", {{"error", std::strerror(errno)}});
    std::string reply =
        serialize_error_reply({errc::forbidden, "only the master's user or root may use the control socket"});
    asio::co_spawn(server->executor, run_refusal(server, connection, std::move(reply)), log_task_failure);
    return;
  }
  if (server->serving >= server->options.max_connections) {
    log_warning("control connection refused: too many connections",
                {{"pid", peer.pid}, {"max_connections", server->options.max_connections}});
    std::string reply = serialize_error_reply({errc::bad_request, "too many control connections"});
    asio::co_spawn(server->executor, run_refusal(server, connection, std::move(reply)), log_task_failure);
    return;
  }
  connection->serving = true;
  ++server->serving;
  asio::co_spawn(server->executor, run_session(server, connection), log_task_failure);
}

// Accepts until EAGAIN; true when out of descriptors (or another error) so the caller pauses.
bool accept_ready(const state_ptr& server) {
  for (;;) {
    int fd = ::accept4(server->listener.native_handle(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0) {
      start_session(server, fd);
      continue;
    }
    if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return false;
    log_warning("control socket: accept failed; pausing", {{"error", std::strerror(errno)}});
    return true;
  }
}

asio::awaitable<void> run_accept_loop(state_ptr server) {
  while (!server->closed) {
    auto [ec] = co_await server->listener.async_wait(asio::posix::stream_descriptor::wait_read,
                                                     asio::as_tuple(asio::use_awaitable));
    if (server->closed) co_return;
    bool pause = true;
    if (ec)
      log_error("control socket: waiting for connections failed", {{"error", ec.message()}});
    else
      pause = accept_ready(server);
    if (pause && !server->closed) {
      server->pause_timer.expires_after(accept_pause);
      co_await server->pause_timer.async_wait(asio::as_tuple(asio::use_awaitable));
    }
  }
}

void log_accept_loop_failure(std::exception_ptr error) {
  if (!error) return;
  try {
    std::rethrow_exception(error);
  } catch (const std::exception& e) {
    log_error("control server stopped accepting", {{"error", e.what()}});
  } catch (...) {
    log_error("control server stopped accepting", {{"error", "unknown exception"}});
  }
}

}  // namespace

control_server::control_server(asio::any_io_executor executor, int listening_fd, control_target& target,
                               control_server_options options)
    : state_(std::make_shared<state>(std::move(executor), listening_fd, target, options)) {
  // accept4 must never block the master's loop, whatever the caller left on the descriptor.
  int flags = ::fcntl(listening_fd, F_GETFL);
  if (flags >= 0 && (flags & O_NONBLOCK) == 0) ::fcntl(listening_fd, F_SETFL, flags | O_NONBLOCK);
}

control_server::~control_server() { close(); }

void control_server::start() {
  if (state_->started || state_->closed) return;
  state_->started = true;
  asio::co_spawn(state_->executor, run_accept_loop(state_), log_accept_loop_failure);
}

void control_server::close() noexcept {
  if (state_->closed) return;
  state_->closed = true;
  boost::system::error_code ignored;
  state_->listener.close(ignored);
  state_->pause_timer.cancel();
  for (auto& connection : state_->sessions) {
    connection->socket.close(ignored);
    connection->timer.cancel();
  }
}

std::size_t control_server::connection_count() const noexcept { return state_->sessions.size(); }

}  // namespace prefork::detail
