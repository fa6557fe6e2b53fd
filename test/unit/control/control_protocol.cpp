#include "control/control_protocol.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <cstring>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

namespace json = boost::json;
using namespace prefork::detail;

// The wire name of a failure's control code ("not_found").
std::string wire_code(const prefork::failure& error) { return std::string(prefork::control_code_name(error.code)); }

control_request parse_ok(const std::string& line) {
  auto parsed = parse_control_request(line);
  BOOST_REQUIRE_MESSAGE(parsed.has_value(),
                        line << " -> " << (parsed ? "" : wire_code(parsed.error()) + ": " + parsed.error().message));
  return *parsed;
}

prefork::failure parse_error(const std::string& line) {
  auto parsed = parse_control_request(line);
  BOOST_REQUIRE_MESSAGE(!parsed.has_value(), line << " was accepted");
  return parsed.error();
}

void check_error(const std::string& line, std::string_view code, std::string_view message_part = {}) {
  auto error = parse_error(line);
  BOOST_TEST(wire_code(error) == code, line << " -> " << wire_code(error) << ": " << error.message);
  if (!message_part.empty())
    BOOST_TEST(error.message.find(message_part) != std::string::npos, line << " -> " << error.message);
}

// Feeds `bytes` to `reader` in chunks of `chunk` and collects the events (too_large as "<too_large>").
std::vector<std::string> feed(control_line_reader& reader, std::string_view bytes, std::size_t chunk) {
  std::vector<std::string> events;
  for (std::size_t at = 0; at < bytes.size(); at += chunk) {
    std::size_t n = std::min(chunk, bytes.size() - at);
    auto space = reader.prepare(n);
    BOOST_REQUIRE_GE(space.size(), n);
    std::memcpy(space.data(), bytes.data() + at, n);
    reader.commit(n);
    while (auto event = reader.next())
      events.push_back(event->kind == control_line_reader::event_kind::line ? std::string(event->line) : "<too_large>");
  }
  return events;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(control_protocol)

BOOST_AUTO_TEST_CASE(parses_commands_without_arguments) {
  const std::vector<std::pair<std::string, control_command>> cases{
      {"ping", control_command::ping},
      {"status", control_command::status},
      {"workers", control_command::workers},
      {"stats", control_command::stats},
      {"reopen_logs", control_command::reopen_logs},
      {"config", control_command::config},
      {"reload", control_command::reload},
      {"stop", control_command::stop},
  };
  for (const auto& [name, command] : cases) {
    auto request = parse_ok(R"({"cmd":")" + name + R"("})");
    BOOST_TEST((request.command == command), name);
    BOOST_TEST(to_string(command) == name);
  }
}

BOOST_AUTO_TEST_CASE(to_string_round_trips_every_command) {
  for (int i = 0; i <= static_cast<int>(control_command::config); ++i) {
    auto command = static_cast<control_command>(i);
    const std::string name(to_string(command));
    BOOST_TEST(name != "unknown");
    if (command == control_command::scale) continue;  // needs arguments: see below
    if (command == control_command::kill_worker || command == control_command::pause_worker ||
        command == control_command::resume_worker) {
      BOOST_TEST((parse_ok(R"({"cmd":")" + name + R"(","id":1})").command == command));
      continue;
    }
    BOOST_TEST((parse_ok(R"({"cmd":")" + name + R"("})").command == command));
  }
}

BOOST_AUTO_TEST_CASE(scale_reads_workers) {
  auto request = parse_ok(R"({"cmd":"scale","workers":4})");
  BOOST_TEST((request.command == control_command::scale));
  BOOST_TEST(request.workers == 4u);
  BOOST_TEST(parse_ok(R"({"cmd":"scale","workers":1})").workers == 1u);
  BOOST_TEST(parse_ok(R"({"cmd":"scale","workers":1024})").workers == 1024u);
}

BOOST_AUTO_TEST_CASE(scale_rejects_bad_workers) {
  check_error(R"({"cmd":"scale"})", "bad_request", "workers must be an integer ≥ 1");
  check_error(R"({"cmd":"scale","workers":0})", "bad_request", "workers must be an integer ≥ 1");
  check_error(R"({"cmd":"scale","workers":-3})", "bad_request", "workers must be an integer ≥ 1");
  check_error(R"({"cmd":"scale","workers":2.5})", "bad_request", "workers must be an integer ≥ 1");
  check_error(R"({"cmd":"scale","workers":"4"})", "bad_request", "workers must be an integer ≥ 1");
  check_error(R"({"cmd":"scale","workers":true})", "bad_request", "workers must be an integer ≥ 1");
  check_error(R"({"cmd":"scale","workers":null})", "bad_request", "workers must be an integer ≥ 1");
  check_error(R"({"cmd":"scale","workers":1025})", "bad_request", "at most 1024");
  check_error(R"({"cmd":"scale","workers":18446744073709551615})", "bad_request");
}

BOOST_AUTO_TEST_CASE(reload_reads_wait) {
  BOOST_TEST(parse_ok(R"({"cmd":"reload"})").wait == false);
  BOOST_TEST(parse_ok(R"({"cmd":"reload","wait":true})").wait == true);
  BOOST_TEST(parse_ok(R"({"cmd":"reload","wait":false})").wait == false);
  check_error(R"({"cmd":"reload","wait":"yes"})", "bad_request", "wait must be a boolean");
  check_error(R"({"cmd":"reload","wait":1})", "bad_request", "wait must be a boolean");
}

BOOST_AUTO_TEST_CASE(stop_reads_graceful) {
  BOOST_TEST((parse_ok(R"({"cmd":"stop"})").stop == stop_kind::graceful));
  BOOST_TEST((parse_ok(R"({"cmd":"stop","graceful":true})").stop == stop_kind::graceful));
  BOOST_TEST((parse_ok(R"({"cmd":"stop","graceful":false})").stop == stop_kind::fast));
  check_error(R"({"cmd":"stop","graceful":0})", "bad_request", "graceful must be a boolean");
}

BOOST_AUTO_TEST_CASE(kill_worker_reads_id_and_signal) {
  auto request = parse_ok(R"({"cmd":"kill_worker","id":3})");
  BOOST_TEST((request.command == control_command::kill_worker));
  BOOST_TEST(request.worker_id == 3);
  BOOST_TEST((request.signal == kill_signal::term));
  BOOST_TEST((parse_ok(R"({"cmd":"kill_worker","id":3,"signal":"KILL"})").signal == kill_signal::kill));
  BOOST_TEST((parse_ok(R"({"cmd":"kill_worker","id":3,"signal":"TERM"})").signal == kill_signal::term));
  BOOST_TEST((parse_ok(R"({"cmd":"kill_worker","id":3,"signal":"SIGKILL"})").signal == kill_signal::kill));
  BOOST_TEST(parse_ok(R"({"cmd":"kill_worker","id":-2})").worker_id == -2);  // the target says not_found
}

BOOST_AUTO_TEST_CASE(kill_worker_rejects_bad_arguments) {
  check_error(R"({"cmd":"kill_worker"})", "bad_request", "id must be an integer");
  check_error(R"({"cmd":"kill_worker","id":"3"})", "bad_request", "id must be an integer");
  check_error(R"({"cmd":"kill_worker","id":1.5})", "bad_request", "id must be an integer");
  check_error(R"({"cmd":"kill_worker","id":18446744073709551615})", "bad_request", "id must be an integer");
  check_error(R"({"cmd":"kill_worker","id":3,"signal":"HUP"})", "bad_request", R"(signal must be "TERM" or "KILL")");
  check_error(R"({"cmd":"kill_worker","id":3,"signal":9})", "bad_request", "signal must be");
  check_error(R"({"cmd":"kill_worker","id":3,"signal":"kill"})", "bad_request", "signal must be");
}

BOOST_AUTO_TEST_CASE(pause_and_resume_read_id) {
  BOOST_TEST(parse_ok(R"({"cmd":"pause_worker","id":7})").worker_id == 7);
  BOOST_TEST(parse_ok(R"({"cmd":"resume_worker","id":8})").worker_id == 8);
  check_error(R"({"cmd":"pause_worker"})", "bad_request", "id must be an integer");
  check_error(R"({"cmd":"resume_worker","id":null})", "bad_request", "id must be an integer");
}

BOOST_AUTO_TEST_CASE(bad_json) {
  check_error("not json", "bad_json", "invalid JSON");
  check_error("{", "bad_json");
  check_error(R"({"cmd":"ping"} {"cmd":"ping"})", "bad_json");
  check_error(R"({"cmd":"ping",})", "bad_json");
  check_error("", "bad_json", "empty line");
  check_error("   \t\r", "bad_json", "empty line");
  check_error("{\"cmd\":\"p\xffng\"}", "bad_json");  // invalid UTF-8
}

BOOST_AUTO_TEST_CASE(bad_request_shapes) {
  check_error("[1,2]", "bad_request", "must be a JSON object");
  check_error("42", "bad_request", "must be a JSON object");
  check_error(R"("ping")", "bad_request", "must be a JSON object");
  check_error("null", "bad_request", "must be a JSON object");
  check_error("{}", "bad_request", "missing \"cmd\"");
  check_error(R"({"command":"ping"})", "bad_request", "missing \"cmd\"");
  check_error(R"({"cmd":1})", "bad_request", "\"cmd\" must be a string");
  check_error(R"({"cmd":null})", "bad_request", "\"cmd\" must be a string");
  check_error(R"({"cmd":["ping"]})", "bad_request", "\"cmd\" must be a string");
}

BOOST_AUTO_TEST_CASE(unknown_command) {
  check_error(R"({"cmd":"frobnicate"})", "unknown_command", "unknown command \"frobnicate\"");
  check_error(R"({"cmd":"PING"})", "unknown_command");
  check_error(R"({"cmd":"kill-worker","id":1})", "unknown_command");
  check_error(R"({"cmd":""})", "unknown_command");
  // A long name is cut in the message, never in the middle of a UTF-8 sequence.
  std::string name(63, 'x');
  name += "\xc3\xa9";  // é straddles the 64-byte cut
  name += std::string(100, 'y');
  auto error = parse_error(R"({"cmd":")" + name + R"("})");
  BOOST_TEST(wire_code(error) == "unknown_command");
  BOOST_TEST(error.message.size() < 100u);
  BOOST_TEST(error.message.find("\xc3") == std::string::npos);
  boost::system::error_code ec;
  json::parse(serialize_error_reply(error), ec);
  BOOST_TEST(!ec);
}

BOOST_AUTO_TEST_CASE(unknown_keys_are_ignored) {
  BOOST_TEST((parse_ok(R"({"cmd":"ping","id":"whatever","extra":[1,2,{}]})").command == control_command::ping));
  BOOST_TEST(parse_ok(R"({"workers":3,"cmd":"scale","verbose":true})").workers == 3u);
}

BOOST_AUTO_TEST_CASE(tolerates_carriage_return_and_spaces) {
  BOOST_TEST((parse_ok("{\"cmd\":\"ping\"}\r").command == control_command::ping));
  BOOST_TEST((parse_ok("  { \"cmd\" : \"stats\" }  ").command == control_command::stats));
}

BOOST_AUTO_TEST_CASE(serializes_replies) {
  BOOST_TEST(serialize_ok_reply("pong") == "{\"ok\":true,\"result\":\"pong\"}\n");
  BOOST_TEST(serialize_ok_reply(json::object{{"desired", 4}}) == "{\"ok\":true,\"result\":{\"desired\":4}}\n");
  BOOST_TEST(serialize_ok_reply(json::object{}) == "{\"ok\":true,\"result\":{}}\n");
  BOOST_TEST(serialize_error_reply({prefork::errc::bad_request, "workers must be an integer ≥ 1"}) ==
             "{\"ok\":false,\"error\":{\"code\":\"bad_request\",\"message\":\"workers must be an integer ≥ 1\"}}\n");
  // Quotes and newlines in a message stay inside one line of valid JSON.
  auto line = serialize_error_reply({prefork::errc::not_found, "no \"worker\"\nhere"});
  BOOST_TEST(std::count(line.begin(), line.end(), '\n') == 1);
  auto reply = json::parse(line).as_object();
  BOOST_TEST(reply.at("ok").as_bool() == false);
  BOOST_TEST(reply.at("error").at("message").as_string() == "no \"worker\"\nhere");
}

BOOST_AUTO_TEST_CASE(control_error_result_value_throws) {
  prefork::result<int> failed = prefork::failure{prefork::errc::not_found, "no worker 9"};
  BOOST_CHECK_EXCEPTION((void)failed.value(), boost::system::system_error, [](const boost::system::system_error& e) {
    return e.code() == prefork::errc::not_found && std::string(e.what()).starts_with("no worker 9");
  });
}

// --- control_line_reader ---------------------------------------------------------------

BOOST_AUTO_TEST_CASE(reader_splits_lines_whatever_the_chunking) {
  const std::string stream = "{\"cmd\":\"ping\"}\n\n{\"cmd\":\"status\"}\r\nlast\n";
  const std::vector<std::string> expected{"{\"cmd\":\"ping\"}", "", "{\"cmd\":\"status\"}\r", "last"};
  for (std::size_t chunk : {1u, 2u, 3u, 7u, 16u, 4096u}) {
    control_line_reader reader;
    BOOST_TEST(feed(reader, stream, chunk) == expected, "chunk " << chunk);
    BOOST_TEST(reader.buffered() == 0u);
  }
}

BOOST_AUTO_TEST_CASE(reader_waits_for_the_newline) {
  control_line_reader reader;
  BOOST_TEST(feed(reader, "{\"cmd\":", 64).empty());
  BOOST_TEST(reader.buffered() == 7u);
  BOOST_TEST(feed(reader, "\"ping\"}\n", 64) == std::vector<std::string>{"{\"cmd\":\"ping\"}"});
}

BOOST_AUTO_TEST_CASE(reader_limit_is_exact) {
  control_line_reader reader(10);
  const std::string ten(10, 'a');
  const std::string eleven(11, 'b');
  BOOST_TEST(feed(reader, ten + "\n", 3) == std::vector<std::string>{ten});
  BOOST_TEST(feed(reader, eleven + "\nok\n", 3) == (std::vector<std::string>{"<too_large>", "ok"}));
  BOOST_TEST(feed(reader, eleven + "\nok\n", 100) == (std::vector<std::string>{"<too_large>", "ok"}));
}

BOOST_AUTO_TEST_CASE(reader_reports_a_long_line_once_and_resumes) {
  control_line_reader reader;
  std::string stream(70 * 1024, 'x');
  stream += "\n{\"cmd\":\"ping\"}\n";
  for (std::size_t chunk : {4096u, 1000u, 200000u}) {
    control_line_reader fresh;
    auto events = feed(fresh, stream, chunk);
    BOOST_TEST(events == (std::vector<std::string>{"<too_large>", "{\"cmd\":\"ping\"}"}), "chunk " << chunk);
  }
  // Memory stays bounded while discarding a huge line that has no newline yet.
  for (int i = 0; i < 100; ++i) {
    auto events = feed(reader, std::string(4096, 'y'), 4096);
    BOOST_TEST(events.size() == (i == 16 ? 1u : 0u));  // reported once, when the limit is passed
    BOOST_TEST(reader.buffered() <= max_control_line);
  }
  BOOST_TEST(feed(reader, "tail\nnext\n", 4096) == std::vector<std::string>{"next"});
}

BOOST_AUTO_TEST_CASE(reader_two_long_lines_in_a_row) {
  control_line_reader reader(8);
  auto events = feed(reader, "0123456789\nabcdefghijkl\nok\n", 5);
  BOOST_TEST(events == (std::vector<std::string>{"<too_large>", "<too_large>", "ok"}));
}

BOOST_AUTO_TEST_CASE(fuzz_lines_never_crash) {
  // Random bytes and random mutations of valid requests: every line gets an answer.
  std::mt19937 random(12345);
  const std::vector<std::string> seeds{R"({"cmd":"scale","workers":4})",
                                       R"({"cmd":"kill_worker","id":3,"signal":"KILL"})",
                                       R"({"cmd":"reload","wait":true})", R"({"cmd":"stop","graceful":false})"};
  for (int i = 0; i < 20000; ++i) {
    std::string line = seeds[random() % seeds.size()];
    int mutations = 1 + static_cast<int>(random() % 4);
    for (int m = 0; m < mutations && !line.empty(); ++m) {
      std::size_t at = random() % line.size();
      switch (random() % 3) {
        case 0: line[at] = static_cast<char>(random() % 256); break;
        case 1: line.erase(at, 1); break;
        default: line.insert(at, 1, static_cast<char>(random() % 256)); break;
      }
    }
    auto parsed = parse_control_request(line);
    std::string reply = parsed ? serialize_ok_reply("x") : serialize_error_reply(parsed.error());
    BOOST_REQUIRE(!reply.empty() && reply.back() == '\n');
    if (!parsed) {
      const std::string code = wire_code(parsed.error());
      BOOST_REQUIRE(code == "bad_json" || code == "bad_request" || code == "unknown_command");
    }
  }
}

BOOST_AUTO_TEST_CASE(fuzz_reader_matches_a_plain_split) {
  std::mt19937 random(777);
  for (int round = 0; round < 200; ++round) {
    std::string stream;
    std::vector<std::string> expected;
    int lines = 1 + static_cast<int>(random() % 20);
    for (int i = 0; i < lines; ++i) {
      std::size_t length = random() % 40;
      std::string line;
      for (std::size_t k = 0; k < length; ++k) line += static_cast<char>('a' + random() % 26);
      stream += line + "\n";
      expected.push_back(length > 30 ? "<too_large>" : line);
    }
    control_line_reader reader(30);
    BOOST_TEST(feed(reader, stream, 1 + random() % 50) == expected);
  }
}

BOOST_AUTO_TEST_SUITE_END()
