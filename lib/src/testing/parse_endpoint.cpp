// Bind-syntax addresses as endpoints, and prefork::testing::connect() to one of them.
#include "testing/parse_endpoint.hpp"

#include "prefork/socket_connect.hpp"
#include "prefork/testing/http_session.hpp"

#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/system/system_error.hpp>

#include <charconv>
#include <chrono>
#include <stdexcept>
#include <string>

namespace prefork::testing {

namespace asio = boost::asio;
using steady = std::chrono::steady_clock;

std::optional<asio::generic::stream_protocol::endpoint> detail::parse_endpoint(std::string_view address) {
  if (address.starts_with("unix:")) {
    auto path = address.substr(5);
    if (path.empty()) return std::nullopt;
    asio::local::stream_protocol::endpoint local{std::string(path)};
    return asio::generic::stream_protocol::endpoint(local.data(), local.size());
  }
  std::string_view host;
  std::string_view port_text;
  if (address.starts_with("[")) {
    auto end = address.find("]:");
    if (end == std::string_view::npos) return std::nullopt;
    host = address.substr(1, end - 1);
    port_text = address.substr(end + 2);
  } else {
    auto colon = address.rfind(':');
    if (colon == std::string_view::npos) return std::nullopt;
    host = address.substr(0, colon);
    port_text = address.substr(colon + 1);
  }
  unsigned port = 0;
  auto [end, error] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (error != std::errc{} || end != port_text.data() + port_text.size() || port == 0 || port > 65535)
    return std::nullopt;
  boost::system::error_code ec;
  auto ip = asio::ip::make_address(std::string(host), ec);
  if (ec) return std::nullopt;
  asio::ip::tcp::endpoint tcp(ip, static_cast<unsigned short>(port));
  return asio::generic::stream_protocol::endpoint(tcp.data(), tcp.size());
}

socket_type connect(std::string_view address, const asio::any_io_executor& executor,
                    std::chrono::milliseconds timeout) {
  auto endpoint = detail::parse_endpoint(address);
  if (!endpoint) throw std::runtime_error("cannot connect to \"" + std::string(address) + "\": not an address");
  socket_type socket(executor);
  auto ec = connect_until(socket, *endpoint, steady::now() + timeout);
  if (ec) throw boost::system::system_error(ec, "connect to " + std::string(address));
  return socket;
}

}  // namespace prefork::testing
