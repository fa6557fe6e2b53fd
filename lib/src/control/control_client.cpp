#include "prefork/control_client.hpp"

#include "prefork/error.hpp"
#include "prefork/socket_connect.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/write.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/throw_exception.hpp>

#include <array>
#include <cerrno>
#include <optional>
#include <stdexcept>
#include <sys/un.h>

namespace prefork {

namespace asio = boost::asio;
namespace json = boost::json;
using steady = std::chrono::steady_clock;

bool is_remote(const failure& error) noexcept { return !control_code_name(error.code).empty(); }

namespace {

// A reply longer than this is not from a sane master: give up rather than grow without bound.
constexpr std::size_t max_reply_bytes = 64 * 1024 * 1024;

failure make_error(errc code, std::string message) { return {code, std::move(message)}; }

std::string milliseconds_text(std::chrono::milliseconds timeout) { return std::to_string(timeout.count()) + " ms"; }

}  // namespace

// Blocking calls with deadlines in the manner of Asio's blocking_*_client_timeout examples:
// start one async operation, run the private io_context until it completes or the deadline
// passes, and on timeout close the socket and drain the aborted handler.
struct control_client::impl {
  asio::io_context io;
  asio::local::stream_protocol::socket socket{io};
  std::string path;
  std::string received;  // bytes read past the last returned line

  // Runs until `done`; false (and the socket closed) when the deadline passed first.
  bool run_until(const bool& done, steady::time_point deadline) {
    io.restart();
    auto now = steady::now();
    if (now < deadline) io.run_for(deadline - now);
    if (done) return true;
    boost::system::error_code ignored;
    socket.close(ignored);
    io.restart();
    io.run();  // completes the aborted operation so that nothing refers to this frame
    return false;
  }

  void reset() noexcept {
    boost::system::error_code ignored;
    socket.close(ignored);
    received.clear();
  }

  failure timed_out(std::string_view step, steady::time_point started) {
    reset();
    auto waited = std::chrono::duration_cast<std::chrono::milliseconds>(steady::now() - started);
    return make_error(errc::timeout,
                      std::string(step) + " " + path + ": no answer within " + milliseconds_text(waited));
  }

  failure failed(std::string_view step, boost::system::error_code ec) {
    reset();
    return make_error(errc::disconnected, std::string(step) + " " + path + ": " + ec.message());
  }

  result<void> write(std::string_view bytes, steady::time_point deadline) {
    if (!socket.is_open()) return make_error(errc::disconnected, "not connected to " + path);
    const auto started = steady::now();
    bool done = false;
    boost::system::error_code result;
    asio::async_write(socket, asio::buffer(bytes.data(), bytes.size()), [&](boost::system::error_code ec, std::size_t) {
      result = ec;
      done = true;
    });
    if (!run_until(done, deadline)) return timed_out("writing to", started);
    if (result) {
      // Keep what was already received: the master may have explained why it closed.
      boost::system::error_code ignored;
      socket.shutdown(asio::socket_base::shutdown_send, ignored);
      return make_error(errc::disconnected, "writing to " + path + ": " + result.message());
    }
    return {};
  }

  result<std::string> read_line(steady::time_point deadline) {
    const auto started = steady::now();
    std::array<char, 4096> chunk;
    std::size_t scanned = 0;
    for (;;) {
      auto newline = received.find('\n', scanned);
      if (newline != std::string::npos) {
        std::string line = received.substr(0, newline);
        received.erase(0, newline + 1);
        return line;
      }
      scanned = received.size();
      if (received.size() > max_reply_bytes) {
        reset();
        return make_error(errc::bad_reply,
                          "reply from " + path + " is longer than " + std::to_string(max_reply_bytes) + " bytes");
      }
      if (!socket.is_open()) return make_error(errc::disconnected, "not connected to " + path);
      bool done = false;
      boost::system::error_code result;
      std::size_t count = 0;
      socket.async_read_some(asio::buffer(chunk), [&](boost::system::error_code ec, std::size_t n) {
        result = ec;
        count = n;
        done = true;
      });
      if (!run_until(done, deadline)) return timed_out("reading from", started);
      received.append(chunk.data(), count);
      if (result) {
        if (received.find('\n', scanned) != std::string::npos) continue;  // the last line still counts
        if (result == asio::error::eof) {
          reset();
          return make_error(errc::disconnected,
                            "reading from " + path + ": the master closed the connection without a reply");
        }
        return failed("reading from", result);
      }
    }
  }
};

control_client::control_client() : impl_(std::make_unique<impl>()) {}
control_client::~control_client() = default;
control_client::control_client(control_client&&) noexcept = default;
control_client& control_client::operator=(control_client&&) noexcept = default;

result<void> control_client::connect(const std::filesystem::path& socket_path, std::chrono::milliseconds timeout) {
  impl_->reset();
  impl_->path = socket_path.string();
  const auto started = steady::now();
  if (impl_->path.size() >= sizeof(sockaddr_un::sun_path)) {
    auto ec = boost::system::error_code(ENAMETOOLONG, boost::system::system_category());
    return make_error(errc::unreachable, "cannot connect to " + impl_->path + ": " + ec.message());
  }
  if (impl_->path.empty()) {
    return make_error(errc::unreachable, "cannot connect: empty control socket path");
  }
  auto result = connect_until(impl_->socket, asio::local::stream_protocol::endpoint(impl_->path), started + timeout);
  if (result == errc::backlog_full) {
    impl_->reset();
    auto waited = std::chrono::duration_cast<std::chrono::milliseconds>(steady::now() - started);
    return make_error(errc::timeout, "connecting to " + impl_->path +
                                         ": the master is busy (its control backlog stayed full for " +
                                         milliseconds_text(waited) + ")");
  }
  if (result) {
    impl_->reset();
    return make_error(errc::unreachable, "cannot connect to " + impl_->path + ": " + result.message());
  }
  return {};
}

bool control_client::is_open() const noexcept { return impl_->socket.is_open(); }

void control_client::close() noexcept { impl_->reset(); }

result<std::string> control_client::call_raw(std::string_view bytes, std::chrono::milliseconds timeout) {
  const auto deadline = steady::now() + timeout;
  auto written = impl_->write(bytes, deadline);
  if (!written) {
    if (written.error().code != errc::disconnected || !impl_->socket.is_open()) return written.error();
    // The master may have written a last line (forbidden) before closing: prefer it.
    auto line = impl_->read_line(std::min(deadline, steady::now() + std::chrono::milliseconds(500)));
    if (line) return line;
    impl_->reset();
    return written.error();
  }
  return impl_->read_line(deadline);
}

result<std::string> control_client::read_line(std::chrono::milliseconds timeout) {
  return impl_->read_line(steady::now() + timeout);
}

result<json::value> control_client::call(const json::object& request, std::chrono::milliseconds timeout) {
  std::string line = json::serialize(request);
  line += '\n';
  auto reply = call_raw(line, timeout);
  if (!reply) return reply.error();
  auto parsed = parse_control_reply(*reply);
  if (!parsed && parsed.error().code == errc::bad_reply) impl_->reset();  // out of step now
  return parsed;
}

result<json::value> parse_control_reply(std::string_view line) {
  auto bad = [&](std::string_view why) {
    std::string shown(line.substr(0, 200));
    return make_error(errc::bad_reply, "bad reply from the master (" + std::string(why) + "): " + shown);
  };
  boost::system::error_code ec;
  json::value document = json::parse(line, ec);
  if (ec) return bad("not JSON");
  const json::object* reply = document.if_object();
  if (reply == nullptr) return bad("not an object");
  const json::value* ok = reply->if_contains("ok");
  if (ok == nullptr || !ok->is_bool()) return bad("no boolean \"ok\"");
  if (ok->get_bool()) {
    const json::value* result = reply->if_contains("result");
    if (result == nullptr) return bad("no \"result\"");
    return *result;
  }
  const json::value* error = reply->if_contains("error");
  const json::object* details = error ? error->if_object() : nullptr;
  const json::value* code = details ? details->if_contains("code") : nullptr;
  if (code == nullptr || !code->is_string()) return bad("no error code");
  std::string message;
  if (const json::value* text = details->if_contains("message"); text && text->is_string())
    message = text->get_string();
  std::optional<errc> known = control_code_from_name(code->get_string());
  if (!known) return bad("unknown error code \"" + std::string(code->get_string()) + "\": " + message);
  return failure{*known, std::move(message)};
}

result<json::value> control_call(const std::filesystem::path& socket_path, const json::object& request,
                                 std::chrono::milliseconds timeout) {
  const auto started = steady::now();
  control_client client;
  auto connected = client.connect(socket_path, timeout);
  if (!connected) return connected.error();
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(timeout - (steady::now() - started));
  return client.call(request, std::max(left, std::chrono::milliseconds(0)));
}

}  // namespace prefork
