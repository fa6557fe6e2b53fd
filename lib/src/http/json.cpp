// JSON responses and request bodies, on Boost.JSON.
#include "prefork/http/json.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

namespace prefork::http {

response json(unsigned status, const boost::json::value& body) {
  return response(status, boost::json::serialize(body), application_json);
}

boost::json::value parse_json(const request& r) {
  boost::system::error_code ec;
  boost::json::value value = boost::json::parse(r.body(), ec);
  if (ec) throw http_error(400, "request body is not valid JSON: " + ec.message());
  return value;
}

}  // namespace prefork::http
