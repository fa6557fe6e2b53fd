// What a user registers with prefork::run: a named coroutine handler that a worker runs
// once per connection, optional hooks run when a worker starts and stops, and optionally
// the app's own section of the config file.
#pragma once

#include "prefork/connection.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/json/fwd.hpp>

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
  /// The top-level key of the app's own section in the config file (e.g. "kv"); empty:
  /// none. The file may then hold that key; prefork keeps its value as given in
  /// config::app_sections, read in a worker through
  /// `worker_context::settings().app_section(config_key)` (null when absent). It may not
  /// be one of prefork's own keys (exit 2 at start).
  std::string config_key = {};
  /// Checks the section wherever prefork checks its own keys: at start, on `--check-config`
  /// and on every reload (a bad section then keeps the running configuration). Called with
  /// the section's value, or null when the file has none, also when another app is
  /// selected (the file stays valid whichever app serves). Throws config_value_error
  /// naming the key inside the section (section_reader does that), or any std::exception;
  /// prefork reports it like its own errors, naming the file and the whole key path:
  /// `"kv.json": "kv.max_keys": expected an integer >= 1, got "x"`. Empty: any value passes.
  /// Runs in the master: no side effects.
  std::function<void(const boost::json::value&)> check_config = {};
};

}  // namespace prefork
