// kv-server: a prefork program of its own, a line-protocol key-value store on the library.
//   SET key value -> OK            (the value is the rest of the line, spaces included)
//   GET key       -> VALUE value | NOT_FOUND
//   DEL key       -> OK | NOT_FOUND
//   anything else -> ERROR <why>
// One command a line (`\n` or `\r\n`), one reply line each, many per connection.
// Its own section of the config file, checked like preforkd's keys (every key optional):
//   "kv": {"max_keys": 100000,       SET of a new key beyond it -> ERROR store full
//          "max_line_bytes": 65536,  a longer line -> ERROR line too long, then close
//          "line_timeout": 10}       seconds a client may stall mid-line or not read replies
// The store is PER WORKER: each worker is its own forked process with its own map, so a key
// SET on one connection is seen only by connections the same worker serves, and it is gone
// when that worker exits (recycling, reload, crash). Shared state belongs in a database;
// this example shows the app API: a handler, worker hooks, and preforkd's whole CLI under
// a name of its own (kv-server --help, --version; listens on kv.sock by default).
//   kv-server -b 127.0.0.1:7000 -w 1 &                 # control socket: kv.ctl
//   printf 'SET greeting hello world\nGET greeting\n' | nc -q1 127.0.0.1 7000
#include "prefork/app.hpp"
#include "prefork/config.hpp"
#include "prefork/log.hpp"
#include "prefork/run.hpp"
#include "prefork/worker_context.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <array>
#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>

namespace {

namespace asio = boost::asio;
using namespace asio::experimental::awaitable_operators;

/// The "kv" section of the config file.
struct kv_settings {
  std::int64_t max_keys = 100'000;
  std::int64_t max_line_bytes = 64 * 1024;
  std::chrono::milliseconds line_timeout{10'000};
};

/// Reads the section (null when the file has none) with prefork's rules and wording; a bad
/// value throws prefork::config_value_error naming its key. The same code checks the file
/// (in the master) and reads it (in each worker).
kv_settings read_settings(const boost::json::value& section) {
  kv_settings settings;
  prefork::section_reader reader(section);
  reader.integer("max_keys", 1, settings.max_keys);
  reader.integer("max_line_bytes", 16, settings.max_line_bytes, 16 * 1024 * 1024);
  reader.seconds("line_timeout", settings.line_timeout);
  reader.reject_unknown_keys();
  return settings;
}

// This worker's store and settings: globals are fine, since every worker is a separate process.
std::unordered_map<std::string, std::string> store;
kv_settings kv;

/// Runs one command line (without its newline) and appends the reply line to `reply`.
void execute(std::string_view line, std::string& reply) {
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  const std::size_t space = line.find(' ');
  const std::string_view command = line.substr(0, space);
  const std::string_view rest = space == std::string_view::npos ? std::string_view{} : line.substr(space + 1);
  const std::size_t key_end = rest.find(' ');
  const std::string key(rest.substr(0, key_end));
  if (command == "SET" && !key.empty() && key_end != std::string_view::npos) {
    if (!store.contains(key) && store.size() >= static_cast<std::size_t>(kv.max_keys)) {
      reply += "ERROR store full (kv.max_keys)\n";
      return;
    }
    store[key] = std::string(rest.substr(key_end + 1));
    reply += "OK\n";
  } else if ((command == "GET" || command == "DEL") && !key.empty() && key_end == std::string_view::npos) {
    const auto found = store.find(key);
    if (found == store.end()) {
      reply += "NOT_FOUND\n";
    } else if (command == "GET") {
      reply += "VALUE ";
      reply += found->second;
      reply += '\n';
    } else {
      store.erase(found);
      reply += "OK\n";
    }
  } else if (command == "SET" || command == "GET" || command == "DEL") {
    reply += command == "SET" ? "ERROR usage: SET key value\n" : "ERROR usage: " + std::string(command) + " key\n";
  } else {
    reply += "ERROR unknown command (SET, GET, DEL)\n";
  }
}

/// One connection: reads lines, answers each, until EOF, idle `keepalive`, drain, or a
/// client that stalls mid-line or does not read its replies for `kv.line_timeout`.
asio::awaitable<void> serve_kv(prefork::connection conn) {
  prefork::socket_type& socket = conn.socket();
  const auto keepalive = conn.worker().settings().keepalive;
  const auto max_line_bytes = static_cast<std::size_t>(kv.max_line_bytes);
  asio::steady_timer deadline(socket.get_executor());
  std::string input, reply;
  std::array<char, 4096> chunk;
  for (;;) {
    // Idle between commands: a drain or the keep-alive timeout may end the connection.
    if (input.empty() && co_await conn.wait_for_request(keepalive) != prefork::wait_result::readable) break;
    deadline.expires_after(kv.line_timeout);
    auto read = co_await (socket.async_read_some(asio::buffer(chunk), asio::as_tuple(asio::use_awaitable)) ||
                          deadline.async_wait(asio::as_tuple(asio::use_awaitable)));
    if (read.index() == 1) break;  // stalled in the middle of a line
    auto [read_error, bytes] = std::get<0>(read);
    input.append(chunk.data(), bytes);
    std::size_t newline;
    while ((newline = input.find('\n')) != std::string::npos) {
      execute(std::string_view(input).substr(0, newline), reply);
      input.erase(0, newline + 1);
      conn.worker().count_request();
    }
    if (input.size() > max_line_bytes) reply += "ERROR line too long\n";
    if (!reply.empty()) {
      deadline.expires_after(kv.line_timeout);
      auto written = co_await (asio::async_write(socket, asio::buffer(reply), asio::as_tuple(asio::use_awaitable)) ||
                               deadline.async_wait(asio::as_tuple(asio::use_awaitable)));
      if (written.index() == 1 || std::get<0>(std::get<0>(written))) break;
      reply.clear();
    }
    if (read_error || input.size() > max_line_bytes) break;  // EOF (or an error) ends it
  }
  boost::system::error_code ignored;
  socket.shutdown(prefork::socket_type::shutdown_send, ignored);
  socket.close(ignored);
}

void open_store(prefork::worker_context& worker) {
  store.clear();                                            // nothing inherited from the master
  kv = read_settings(worker.settings().app_section("kv"));  // checked already: cannot throw
  prefork::log_info("kv store opened", {{"generation", worker.generation()}, {"max_keys", kv.max_keys}});
}

void close_store(prefork::worker_context& /*worker*/) {
  prefork::log_info("kv store discarded", {{"keys", store.size()}});
}

}  // namespace

int main(int argc, char** argv) {
  prefork::app kv_app{"kv", &serve_kv, &open_store, &close_store};
  kv_app.config_key = "kv";
  kv_app.check_config = [](const boost::json::value& section) { (void)read_settings(section); };
  prefork::run_options options;
  options.name = "kv-server";
  options.description = "A line-protocol key-value store, one store per worker (a prefork example).";
  options.version = "1.0.0";
  // Runs from any directory: the sockets default to the working directory, not run/.
  options.defaults = {{"bind", "unix:kv.sock"}, {"control", "kv.ctl"}};
  return prefork::run(argc, argv, {std::move(kv_app)}, std::move(options));
}
