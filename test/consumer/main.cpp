// tiny: a prefork program of its own. Each connection gets one line naming the worker that
// served it, then is closed; preforkd's whole command line, config, signals and control
// socket come with prefork::run.
//   mkdir -p run && tiny -b 127.0.0.1:7000 -w 2 &   # control socket: run/preforkd.ctl
//   nc 127.0.0.1 7000                               # -> hello from worker 1
#include <prefork/app.hpp>
#include <prefork/run.hpp>
#include <prefork/worker_context.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <string>

namespace asio = boost::asio;

// Runs in a worker, once per connection, on the worker's own io_context.
asio::awaitable<void> greet(prefork::connection connection) {
  const std::string line = "hello from worker " + std::to_string(connection.worker().id()) + "\n";
  auto [error, written] =
      co_await asio::async_write(connection.socket(), asio::buffer(line), asio::as_tuple(asio::use_awaitable));
  if (!error) connection.worker().count_request();
}  // the socket closes with the connection

int main(int argc, char** argv) {
  const prefork::app tiny{"tiny", &greet};
  return prefork::run(argc, argv, {tiny});
}
