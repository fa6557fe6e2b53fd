// Addresses in bind syntax ("unix:PATH", "HOST:PORT", "[V6]:PORT") as endpoints for the
// harness's clients.
#pragma once

#include <boost/asio/generic/stream_protocol.hpp>

#include <optional>
#include <string_view>

namespace prefork::testing::detail {

// A bind-syntax address as an endpoint any stream socket can connect to.
std::optional<boost::asio::generic::stream_protocol::endpoint> parse_endpoint(std::string_view address);

}  // namespace prefork::testing::detail
