#include "core/log_line.hpp"

#include <boost/test/unit_test.hpp>

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include <time.h>

namespace {

using prefork::detail::append_utc_timestamp;

std::string timestamp(std::int64_t seconds, long nanoseconds = 0) {
  std::string out;
  append_utc_timestamp(out, timespec{static_cast<time_t>(seconds), nanoseconds});
  return out;
}

/// What gmtime_r says, in the same layout: the reference our lock-free date must match.
std::string reference(std::int64_t seconds, long nanoseconds = 0) {
  time_t t = static_cast<time_t>(seconds);
  std::tm utc{};
  ::gmtime_r(&t, &utc);
  char text[80];
  std::snprintf(text, sizeof text, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", utc.tm_year + 1900, utc.tm_mon + 1,
                utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec, static_cast<int>(nanoseconds / 1000000));
  return text;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(log_line)

BOOST_AUTO_TEST_CASE(timestamp_of_known_instants) {
  BOOST_TEST(timestamp(0) == "1970-01-01T00:00:00.000Z");
  BOOST_TEST(timestamp(951782400, 999999999) == "2000-02-29T00:00:00.999Z");  // a leap day of a 400-year
  BOOST_TEST(timestamp(1795709543, 123456789) == "2026-11-26T16:12:23.123Z");
  BOOST_TEST(timestamp(4107542399) == "2100-02-28T23:59:59.000Z");  // 2100 is not a leap year
  BOOST_TEST(timestamp(4107542400) == "2100-03-01T00:00:00.000Z");
  BOOST_TEST(timestamp(-1) == "1969-12-31T23:59:59.000Z");
}

BOOST_AUTO_TEST_CASE(timestamp_matches_gmtime_over_four_centuries) {
  // Every day boundary (and a second either side) from 1900 to 2300, plus odd seconds.
  std::vector<std::string> mismatches;
  for (std::int64_t day = -25567; day <= 120894 && mismatches.size() < 5; ++day) {
    for (std::int64_t seconds : {day * 86400 - 1, day * 86400, day * 86400 + 45296}) {
      if (timestamp(seconds, 7000000) != reference(seconds, 7000000))
        mismatches.push_back(timestamp(seconds, 7000000) + " != " + reference(seconds, 7000000));
    }
  }
  BOOST_TEST(mismatches.empty(), (mismatches.empty() ? std::string() : mismatches.front()));
}

BOOST_AUTO_TEST_SUITE_END()
