// The json-api example (apps/examples/json-api), built here against the installed prefork:
// its routes, answered through the library's HTTP loop, driven by prefork::testing.
#define BOOST_TEST_MODULE json_api tests
#include <prefork/testing.hpp>

#include <boost/json/value.hpp>
#include <boost/test/unit_test.hpp>

#include <string>

BOOST_AUTO_TEST_CASE(json_api_answers_over_the_installed_library) {
  prefork::testing::server_options options;
  options.program = JSON_API_PATH;  // from CMake: $<TARGET_FILE:json-api>
  options.config["workers"] = 2;
  prefork::testing::server api(options);

  BOOST_TEST(api.get("/health").body == "ok\n");
  const auto sum = api.post_json("/sum", {{"a", 40}, {"b", 2}});
  BOOST_TEST(sum.status == 200u);
  BOOST_TEST(sum.json() == boost::json::value({{"sum", 42}}));
  BOOST_TEST(api.post("/sum", "{", "application/json").status == 400u);
  BOOST_TEST(api.get("/sum").header("Allow").value_or("") == "POST");
  BOOST_TEST(api.get("/pid").json().at("pid").to_number<long long>() > 0);
}
