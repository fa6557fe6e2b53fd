// JSON in and out of HTTP handlers, on Boost.JSON.
#pragma once

#include "prefork/http/request.hpp"
#include "prefork/http/response.hpp"

#include <boost/json/value.hpp>

namespace prefork::http {

/// An application/json response whose body is `body` serialized.
response json(unsigned status, const boost::json::value& body);

/// The request's body parsed as JSON. Throws http_error(400, "request body is not valid
/// JSON: <why>") when it is not (an empty body included), so a handler that lets it
/// propagate answers 400 with that message.
boost::json::value parse_json(const request& r);

}  // namespace prefork::http
