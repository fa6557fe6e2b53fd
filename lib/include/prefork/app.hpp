// What a user registers with prefork::run: a named coroutine handler that a worker runs
// once per connection, and optional hooks run when a worker starts and stops.
#pragma once

#include "prefork/connection.hpp"

#include <boost/asio/awaitable.hpp>

#include <functional>
#include <string>

namespace prefork {

class worker_context;

/// Serves one connection until it ends. Runs on the worker's single-threaded io_context.
/// An exception is logged with the worker id and ends only this connection.
using connection_handler = std::function<boost::asio::awaitable<void>(connection)>;

using worker_hook = std::function<void(worker_context&)>;

struct app {
  std::string name;
  connection_handler serve;
  worker_hook on_worker_start = {};  // after the worker's io_context exists, before any connection
  worker_hook on_worker_stop = {};   // after the last connection ended, before the worker exits
};

}  // namespace prefork
