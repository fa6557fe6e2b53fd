// The JSON control messages of a worker's channel: every kind round-trips, and every
// malformed payload is frame_malformed (never a silently truncated field).
#include "channel/worker_message.hpp"

#include "prefork/error.hpp"

#include <boost/test/unit_test.hpp>

#include <cstdint>
#include <string>

using namespace prefork::detail;

BOOST_AUTO_TEST_SUITE(worker_message)

BOOST_AUTO_TEST_CASE(ready_round_trips) {
  prefork::detail::worker_message ready;
  ready.kind = worker_message_kind::ready;
  ready.id = 2147483647;
  ready.generation = 18446744073709551615ull;
  ready.pid = 4194304;
  auto decoded = decode_worker_message(encode_worker_message(ready));
  BOOST_REQUIRE(decoded.has_value());
  BOOST_TEST((decoded->kind == worker_message_kind::ready));
  BOOST_TEST(decoded->id == ready.id);
  BOOST_TEST(decoded->generation == ready.generation);
  BOOST_TEST(decoded->pid == ready.pid);
}

BOOST_AUTO_TEST_CASE(heartbeat_and_bare_kinds_round_trip) {
  prefork::detail::worker_message beat;
  beat.kind = worker_message_kind::heartbeat;
  beat.open = 3;
  beat.served = 99;
  auto decoded = decode_worker_message(encode_worker_message(beat));
  BOOST_REQUIRE(decoded.has_value());
  BOOST_TEST(decoded->open == 3u);
  BOOST_TEST(decoded->served == 99u);
  for (auto kind : {worker_message_kind::draining, worker_message_kind::reopen_logs}) {
    prefork::detail::worker_message bare;
    bare.kind = kind;
    auto again = decode_worker_message(encode_worker_message(bare));
    BOOST_REQUIRE(again.has_value());
    BOOST_TEST((again->kind == kind));
  }
}

BOOST_AUTO_TEST_CASE(malformed_payloads_are_frame_malformed) {
  const auto malformed = make_error_code(prefork::errc::frame_malformed);
  for (std::string payload : {
           R"(not json)", R"([1])", R"({})", R"({"type":5})", R"({"type":"nonsense"})",
           R"({"type":"ready","id":1,"generation":1})",                            // no pid
           R"({"type":"ready","id":-1,"generation":1,"pid":1})",                   // negative
           R"({"type":"ready","id":2147483648,"generation":1,"pid":1})",           // beyond int
           R"({"type":"ready","id":4294967297,"generation":1,"pid":1})",           // would wrap to 1
           R"({"type":"ready","id":1,"generation":1,"pid":9223372036854775808})",  // beyond int64
           R"({"type":"heartbeat","open":1})",                                     // no served
           R"({"type":"heartbeat","open":1.5,"served":1})",                        // not an integer
       }) {
    BOOST_TEST_CONTEXT("payload: " << payload) {
      auto decoded = decode_worker_message(payload);
      BOOST_TEST(!decoded.has_value());
      if (!decoded) BOOST_TEST(decoded.error() == malformed);
    }
  }
}

BOOST_AUTO_TEST_SUITE_END()
