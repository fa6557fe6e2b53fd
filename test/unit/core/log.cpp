#include "prefork/log.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

namespace {

namespace json = boost::json;
namespace fs = std::filesystem;
using prefork::log_config;
using prefork::log_format;
using prefork::log_level;
using prefork::log_role;

/// A fresh temp directory per test; restores the default logging (stderr, info, text, master)
/// afterwards so that tests and other suites do not see each other's configuration.
struct log_fixture {
  fs::path dir;

  log_fixture() {
    std::string pattern = (fs::temp_directory_path() / "prefork-log-XXXXXX").string();
    BOOST_REQUIRE(::mkdtemp(pattern.data()) != nullptr);
    dir = pattern;
  }
  ~log_fixture() {
    prefork::set_log_identity(log_role::master);
    prefork::init_logging(log_config{});
    std::error_code ignored;
    fs::remove_all(dir, ignored);
  }

  fs::path init_file(log_format format, log_level level = log_level::info) {
    fs::path file = dir / "test.log";
    auto ec = prefork::init_logging(log_config{.level = level, .file = file.string(), .format = format});
    BOOST_REQUIRE_MESSAGE(!ec, "init_logging: " << ec.message());
    return file;
  }
};

std::vector<std::string> read_lines(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  std::vector<std::string> lines;
  std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  BOOST_TEST_CONTEXT("file " << file) {
    BOOST_CHECK_MESSAGE(all.empty() || all.back() == '\n', "last line not terminated");
  }
  std::istringstream stream(all);
  for (std::string line; std::getline(stream, line);) lines.push_back(line);
  return lines;
}

json::object parse_line(const std::string& line) {
  boost::system::error_code ec;
  json::value value = json::parse(line, ec);
  BOOST_REQUIRE_MESSAGE(!ec, "not JSON (" << ec.message() << "): " << line);
  BOOST_REQUIRE_MESSAGE(value.is_object(), "not an object: " << line);
  return value.as_object();
}

/// RFC 3339 UTC with milliseconds: 2026-11-26T16:02:23.123Z (std::regex would do, but it
/// trips g++ 12's -Wmaybe-uninitialized in sanitizer builds).
bool is_timestamp(std::string_view text) {
  constexpr std::string_view shape = "dddd-dd-ddTdd:dd:dd.dddZ";
  if (text.size() != shape.size()) return false;
  for (std::size_t i = 0; i < shape.size(); ++i) {
    bool ok = shape[i] == 'd' ? (text[i] >= '0' && text[i] <= '9') : text[i] == shape[i];
    if (!ok) return false;
  }
  return true;
}

/// A text line split into its timestamp and what follows it.
std::pair<std::string, std::string> split_text_line(const std::string& line) {
  auto space = line.find(' ');
  if (space == std::string::npos) return {line, ""};
  return {line.substr(0, space), line.substr(space)};
}

}  // namespace

// The suite must be named after the file, but a global `namespace log` would clash with
// ::log from <math.h>: the enclosing namespace only changes the C++ name, not the test tree.
namespace log_tests {

BOOST_AUTO_TEST_SUITE(log)

BOOST_FIXTURE_TEST_CASE(json_line_has_every_field_with_its_type, log_fixture) {
  auto file = init_file(log_format::json);
  prefork::set_log_identity(log_role::master);
  std::string owned = "owned string";
  prefork::log_info("hello", {{"text", "word"},
                              {"owned", owned},
                              {"negative", -5},
                              {"count", std::size_t{7}},
                              {"ratio", 1.5},
                              {"flag", true},
                              {"big", std::uint64_t{18446744073709551615ull}}});

  auto lines = read_lines(file);
  BOOST_REQUIRE_EQUAL(lines.size(), 1u);
  auto line = parse_line(lines[0]);
  BOOST_TEST(is_timestamp(line.at("ts").as_string()), line.at("ts").as_string());
  BOOST_TEST(line.at("level").as_string() == "info");
  BOOST_TEST(line.at("role").as_string() == "master");
  BOOST_TEST(line.at("pid").as_int64() == ::getpid());
  BOOST_TEST(!line.contains("worker"));
  BOOST_TEST(line.at("msg").as_string() == "hello");
  BOOST_TEST(line.at("text").as_string() == "word");
  BOOST_TEST(line.at("owned").as_string() == "owned string");
  BOOST_TEST(line.at("negative").as_int64() == -5);
  BOOST_TEST(line.at("count").to_number<std::uint64_t>() == 7u);
  BOOST_TEST(line.at("ratio").as_double() == 1.5);
  BOOST_TEST(line.at("flag").as_bool() == true);
  BOOST_TEST(line.at("big").as_uint64() == 18446744073709551615ull);
  BOOST_TEST(line.size() == 12u);  // ts, level, role, pid, msg and the 7 fields
  // Keys in a fixed order: ts, level, role, pid, msg, then the fields as given.
  BOOST_TEST(lines[0].starts_with("{\"ts\":\""));
  BOOST_TEST(lines[0].find("\"pid\":") < lines[0].find("\"msg\":"));
}

BOOST_FIXTURE_TEST_CASE(json_line_of_a_worker_has_its_id, log_fixture) {
  auto file = init_file(log_format::json);
  prefork::set_log_identity(log_role::worker, 3);
  prefork::log_warning("slow", {{"ms", 250}});

  auto lines = read_lines(file);
  BOOST_REQUIRE_EQUAL(lines.size(), 1u);
  auto line = parse_line(lines[0]);
  BOOST_TEST(line.at("role").as_string() == "worker");
  BOOST_TEST(line.at("worker").as_int64() == 3);
  BOOST_TEST(line.at("pid").as_int64() == ::getpid());
  BOOST_TEST(line.at("level").as_string() == "warning");
  BOOST_TEST(line.at("ms").as_int64() == 250);
}

BOOST_FIXTURE_TEST_CASE(json_field_named_like_a_line_key_is_prefixed, log_fixture) {
  auto file = init_file(log_format::json);
  prefork::set_log_identity(log_role::master);
  // The master reporting on a worker: `worker` is free in its lines, `pid` is not.
  prefork::log_error("worker timed out", {{"worker", 4}, {"pid", 4242}, {"msg", "x"}});
  prefork::set_log_identity(log_role::worker, 2);
  prefork::log_error("again", {{"worker", 4}});

  auto lines = read_lines(file);
  BOOST_REQUIRE_EQUAL(lines.size(), 2u);
  auto master_line = parse_line(lines[0]);
  BOOST_TEST(master_line.at("worker").as_int64() == 4);
  BOOST_TEST(master_line.at("pid").as_int64() == ::getpid());
  BOOST_TEST(master_line.at("event.pid").as_int64() == 4242);
  BOOST_TEST(master_line.at("msg").as_string() == "worker timed out");
  BOOST_TEST(master_line.at("event.msg").as_string() == "x");
  auto worker_line = parse_line(lines[1]);
  BOOST_TEST(worker_line.at("worker").as_int64() == 2);
  BOOST_TEST(worker_line.at("event.worker").as_int64() == 4);
  // No duplicate key anywhere: the parser keeps the last one, so count the raw text.
  BOOST_TEST(lines[1].find("\"worker\":") == lines[1].rfind("\"worker\":"));
}

BOOST_FIXTURE_TEST_CASE(text_line_has_a_fixed_layout, log_fixture) {
  auto file = init_file(log_format::text, log_level::trace);
  prefork::set_log_identity(log_role::master);
  prefork::log_info("listening", {{"bind", "unix:/tmp/a.sock"}, {"backlog", 1024}, {"ok", false}, {"load", 0.25}});
  prefork::set_log_identity(log_role::worker, 3);
  prefork::log_warning("slow request", {{"path", "/sleep x"}, {"empty", ""}});
  prefork::log_trace("t");

  auto lines = read_lines(file);
  BOOST_REQUIRE_EQUAL(lines.size(), 3u);
  std::string pid = std::to_string(::getpid());
  std::vector<std::string> expected{
      " info    master[" + pid + "] listening bind=unix:/tmp/a.sock backlog=1024 ok=false load=0.25",
      " warning worker.3[" + pid + "] slow request path=\"/sleep x\" empty=\"\"",
      " trace   worker.3[" + pid + "] t",
  };
  for (std::size_t i = 0; i < lines.size(); ++i) {
    auto [timestamp, rest] = split_text_line(lines[i]);
    BOOST_TEST(is_timestamp(timestamp), lines[i]);
    BOOST_TEST(rest == expected[i]);
  }
}

BOOST_FIXTURE_TEST_CASE(level_filter_drops_lower_levels, log_fixture) {
  auto file = init_file(log_format::json, log_level::warning);
  BOOST_TEST(!prefork::log_enabled(log_level::trace));
  BOOST_TEST(!prefork::log_enabled(log_level::debug));
  BOOST_TEST(!prefork::log_enabled(log_level::info));
  BOOST_TEST(prefork::log_enabled(log_level::warning));
  BOOST_TEST(prefork::log_enabled(log_level::error));
  BOOST_TEST(prefork::log_enabled(log_level::fatal));
  prefork::log_trace("no");
  prefork::log_debug("no");
  prefork::log_info("no");
  prefork::log_warning("w");
  prefork::log_error("e");
  prefork::log_fatal("f");
  prefork::log(log_level::info, "no");
  prefork::log(log_level::error, "e2");

  auto lines = read_lines(file);
  BOOST_REQUIRE_EQUAL(lines.size(), 4u);
  std::vector<std::string> got;
  for (const auto& line : lines) {
    auto object = parse_line(line);
    got.push_back(std::string(object.at("level").as_string()) + ":" + std::string(object.at("msg").as_string()));
  }
  std::vector<std::string> expected{"warning:w", "error:e", "fatal:f", "error:e2"};
  BOOST_TEST(got == expected, boost::test_tools::per_element());

  init_file(log_format::json, log_level::trace);
  BOOST_TEST(prefork::log_enabled(log_level::trace));
}

BOOST_FIXTURE_TEST_CASE(json_escapes_quotes_newlines_and_bad_utf8, log_fixture) {
  auto file = init_file(log_format::json);
  const std::string tricky = "say \"hi\"\nnext\tline\\ \x01 caf\xc3\xa9";
  prefork::log_info(tricky, {{"value", tricky},
                             {"bad",
                              "a\xff"
                              "b\xc3"},
                             {"key \"q\"", 1}});

  auto lines = read_lines(file);
  BOOST_REQUIRE_EQUAL(lines.size(), 1u);
  auto line = parse_line(lines[0]);
  BOOST_TEST(line.at("msg").as_string() == tricky);
  BOOST_TEST(line.at("value").as_string() == tricky);
  BOOST_TEST(line.at("bad").as_string() ==
             "a\xef\xbf\xbd"
             "b\xef\xbf\xbd");
  BOOST_TEST(line.at("key \"q\"").as_int64() == 1);
}

BOOST_FIXTURE_TEST_CASE(json_non_finite_double_is_null, log_fixture) {
  auto file = init_file(log_format::json);
  prefork::log_info("m", {{"nan", std::nan("")}, {"inf", 1.0 / 0.0}});
  auto lines = read_lines(file);
  BOOST_REQUIRE_EQUAL(lines.size(), 1u);
  auto line = parse_line(lines[0]);
  BOOST_TEST(line.at("nan").is_null());
  BOOST_TEST(line.at("inf").is_null());
}

BOOST_FIXTURE_TEST_CASE(text_escapes_quotes_and_newlines, log_fixture) {
  auto file = init_file(log_format::text);
  prefork::log_info("two\nlines\r", {{"value", "say \"hi\"\nok"}, {"eq", "a=b"}, {"path", "C:\\x"}});
  auto lines = read_lines(file);
  BOOST_REQUIRE_EQUAL(lines.size(), 1u);
  const std::string expected_tail = R"( two\nlines\r value="say \"hi\"\nok" eq="a=b" path="C:\\x")";
  BOOST_TEST(lines[0].ends_with(expected_tail), lines[0]);
}

BOOST_FIXTURE_TEST_CASE(reopen_after_rename_creates_a_new_file, log_fixture) {
  auto file = init_file(log_format::json);
  prefork::log_info("before");
  fs::path rotated = dir / "test.log.1";
  fs::rename(file, rotated);
  prefork::log_info("still old");  // until reopen, the moved file gets the lines
  BOOST_TEST(!fs::exists(file));

  auto ec = prefork::reopen_logs();
  BOOST_REQUIRE_MESSAGE(!ec, ec.message());
  BOOST_TEST(fs::exists(file));
  prefork::log_info("after");

  auto old_lines = read_lines(rotated);
  BOOST_REQUIRE_EQUAL(old_lines.size(), 2u);
  BOOST_TEST(parse_line(old_lines[0]).at("msg").as_string() == "before");
  BOOST_TEST(parse_line(old_lines[1]).at("msg").as_string() == "still old");
  auto new_lines = read_lines(file);
  BOOST_REQUIRE_EQUAL(new_lines.size(), 1u);
  BOOST_TEST(parse_line(new_lines[0]).at("msg").as_string() == "after");
}

BOOST_FIXTURE_TEST_CASE(reopen_appends_to_an_existing_file, log_fixture) {
  auto file = init_file(log_format::text);
  prefork::log_info("one");
  BOOST_REQUIRE(!prefork::reopen_logs());
  prefork::log_info("two");
  auto lines = read_lines(file);
  BOOST_REQUIRE_EQUAL(lines.size(), 2u);
  BOOST_TEST(lines[0].ends_with(" one"));
  BOOST_TEST(lines[1].ends_with(" two"));
}

BOOST_FIXTURE_TEST_CASE(reopen_failure_keeps_the_old_file, log_fixture) {
  fs::path sub = dir / "sub";
  fs::create_directory(sub);
  fs::path file = sub / "test.log";
  BOOST_REQUIRE(
      !prefork::init_logging(log_config{.level = log_level::info, .file = file.string(), .format = log_format::json}));
  prefork::log_info("before");
  fs::path kept = dir / "kept.log";
  fs::rename(file, kept);
  fs::remove(sub);  // the path can no longer be created

  auto ec = prefork::reopen_logs();
  BOOST_TEST(ec == boost::system::errc::no_such_file_or_directory, ec.message());
  prefork::log_info("after");
  auto lines = read_lines(kept);
  BOOST_REQUIRE_EQUAL(lines.size(), 2u);
  BOOST_TEST(parse_line(lines[1]).at("msg").as_string() == "after");
}

BOOST_FIXTURE_TEST_CASE(init_with_unwritable_path_fails_and_keeps_previous, log_fixture) {
  auto file = init_file(log_format::json);
  auto ec = prefork::init_logging(
      log_config{.level = log_level::trace, .file = (dir / "missing" / "x.log").string(), .format = log_format::text});
  BOOST_TEST(ec == boost::system::errc::no_such_file_or_directory, ec.message());
  BOOST_TEST(!fs::exists(dir / "missing"));
  // The previous configuration (JSON at info, to the file) stays in effect.
  BOOST_TEST(!prefork::log_enabled(log_level::debug));
  prefork::log_info("still here");
  auto lines = read_lines(file);
  BOOST_REQUIRE_EQUAL(lines.size(), 1u);
  BOOST_TEST(parse_line(lines[0]).at("msg").as_string() == "still here");

  ec = prefork::init_logging(log_config{.level = log_level::info, .file = dir.string(), .format = log_format::text});
  BOOST_TEST(ec == boost::system::errc::is_a_directory, ec.message());
}

BOOST_FIXTURE_TEST_CASE(dash_means_stderr, log_fixture) {
  // In a child, so that stderr can be pointed at a file without touching the test runner's.
  fs::path captured = dir / "stderr.txt";
  std::fflush(stderr);
  pid_t pid = ::fork();
  BOOST_REQUIRE(pid >= 0);
  if (pid == 0) {
    int fd = ::open(captured.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0 || ::dup2(fd, STDERR_FILENO) < 0) ::_exit(10);
    if (prefork::init_logging(log_config{})) ::_exit(11);
    if (prefork::reopen_logs()) ::_exit(12);  // nothing to reopen: a no-op
    prefork::set_log_identity(log_role::worker, 9);
    prefork::log_debug("filtered at info");
    prefork::log_info("to stderr", {{"k", "v"}});
    ::_exit(0);
  }
  int status = 0;
  BOOST_REQUIRE_EQUAL(::waitpid(pid, &status, 0), pid);
  BOOST_REQUIRE(WIFEXITED(status));
  BOOST_REQUIRE_EQUAL(WEXITSTATUS(status), 0);
  auto lines = read_lines(captured);
  BOOST_REQUIRE_EQUAL(lines.size(), 1u);
  BOOST_TEST(lines[0].ends_with(" info    worker.9[" + std::to_string(pid) + "] to stderr k=v"), lines[0]);
}

BOOST_FIXTURE_TEST_CASE(forked_worker_and_master_lines_never_interleave, log_fixture) {
  auto file = init_file(log_format::json);
  prefork::set_log_identity(log_role::master);
  constexpr int lines_each = 2000;
  const std::string padding(600, 'x');  // long lines make a torn write likely if there were one

  // Both start together (the child waits on a pipe) so that their writes overlap in time.
  int start[2];
  BOOST_REQUIRE(::pipe(start) == 0);
  pid_t pid = ::fork();
  BOOST_REQUIRE(pid >= 0);
  if (pid == 0) {
    ::close(start[1]);
    char go = 0;
    if (::read(start[0], &go, 1) != 1) ::_exit(10);
    prefork::set_log_identity(log_role::worker, 1);
    for (int i = 0; i < lines_each; ++i) prefork::log_info("from worker", {{"i", i}, {"pad", padding}});
    ::_exit(0);
  }
  ::close(start[0]);
  bool started = ::write(start[1], "g", 1) == 1;
  ::close(start[1]);  // on failure the child reads EOF and exits 10
  for (int i = 0; started && i < lines_each; ++i) prefork::log_info("from master", {{"i", i}, {"pad", padding}});
  int status = 0;
  BOOST_REQUIRE_EQUAL(::waitpid(pid, &status, 0), pid);
  BOOST_REQUIRE(started);
  BOOST_REQUIRE(WIFEXITED(status));
  BOOST_REQUIRE_EQUAL(WEXITSTATUS(status), 0);

  auto lines = read_lines(file);
  BOOST_REQUIRE_EQUAL(lines.size(), 2u * lines_each);
  int master_next = 0;
  int worker_next = 0;
  for (const auto& text : lines) {
    auto line = parse_line(text);
    BOOST_REQUIRE_EQUAL(line.at("pad").as_string(), padding);
    std::int64_t i = line.at("i").as_int64();
    if (line.at("role").as_string() == "master") {
      BOOST_REQUIRE_EQUAL(line.at("pid").as_int64(), ::getpid());
      BOOST_REQUIRE(!line.contains("worker"));
      BOOST_REQUIRE_EQUAL(i, master_next++);  // each process's lines in its own order
    } else {
      BOOST_REQUIRE_EQUAL(line.at("role").as_string(), "worker");
      BOOST_REQUIRE_EQUAL(line.at("pid").as_int64(), pid);
      BOOST_REQUIRE_EQUAL(line.at("worker").as_int64(), 1);
      BOOST_REQUIRE_EQUAL(i, worker_next++);
    }
  }
  BOOST_TEST(master_next == lines_each);
  BOOST_TEST(worker_next == lines_each);
}

BOOST_FIXTURE_TEST_CASE(reopen_keeps_the_descriptor_number, log_fixture) {
  auto file = init_file(log_format::json);
  const int fd = prefork::log_descriptor();
  BOOST_TEST(fd != STDERR_FILENO);
  fs::rename(file, dir / "test.log.1");
  BOOST_REQUIRE(!prefork::reopen_logs());
  // The new file took over the number: a thread writing at that moment never meets a
  // closed descriptor. It stays close-on-exec.
  BOOST_TEST(prefork::log_descriptor() == fd);
  BOOST_TEST((::fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0);
  init_file(log_format::text);
  BOOST_TEST(prefork::log_descriptor() == fd);
  prefork::log_info("in the new file");
  BOOST_REQUIRE_EQUAL(read_lines(file).size(), 1u);
  BOOST_TEST(read_lines(dir / "test.log.1").empty());
}

BOOST_FIXTURE_TEST_CASE(back_to_stderr_closes_the_file, log_fixture) {
  init_file(log_format::json);
  const int fd = prefork::log_descriptor();
  BOOST_REQUIRE(!prefork::init_logging(log_config{}));
  BOOST_TEST(prefork::log_descriptor() == STDERR_FILENO);
  // An exec'd worker relies on it: the number may be taken by its channel next.
  BOOST_TEST(::fcntl(fd, F_GETFD) == -1);
}

BOOST_FIXTURE_TEST_CASE(a_thread_logging_through_reopens_loses_no_line, log_fixture) {
  auto file = init_file(log_format::json);
  constexpr int lines = 20000;
  std::atomic<bool> done{false};
  std::thread writer([&] {
    for (int i = 0; i < lines; ++i) prefork::log_info("from thread", {{"i", i}});
    done = true;
  });
  int rotations = 0;
  while (!done) {  // rotate as logrotate would, as fast as possible
    fs::rename(file, dir / ("test.log." + std::to_string(++rotations)));
    BOOST_REQUIRE(!prefork::reopen_logs());
    ::usleep(100);
  }
  writer.join();
  std::vector<int> seen(lines, 0);
  std::vector<fs::path> files{file};
  for (int r = 1; r <= rotations; ++r) files.push_back(dir / ("test.log." + std::to_string(r)));
  for (const auto& path : files) {
    if (!fs::exists(path)) continue;
    for (const auto& text : read_lines(path)) ++seen[parse_line(text).at("i").as_int64()];
  }
  BOOST_TEST_MESSAGE("rotations: " << rotations);
  BOOST_TEST(std::count(seen.begin(), seen.end(), 1) == lines);  // each line once, none lost
}

BOOST_FIXTURE_TEST_CASE(a_child_forked_while_another_thread_logs_can_log, log_fixture) {
  // No lock on the way of a line: a fork while another thread is in the middle of one
  // must not leave the child stuck on its first line (as a held logger mutex would).
  auto file = init_file(log_format::json);
  std::atomic<bool> stop{false};
  std::thread writer([&] {
    while (!stop) prefork::log_info("busy", {{"pad", std::string(200, 'x')}});
  });
  constexpr int children = 30;
  int stuck = 0;
  for (int c = 0; c < children; ++c) {
    pid_t pid = ::fork();
    if (pid == 0) {
      prefork::set_log_identity(log_role::worker, c);
      prefork::log_info("child");
      ::_exit(0);
    }
    if (pid < 0) break;
    int status = 0;
    pid_t waited = 0;
    for (int tries = 0; tries < 500 && (waited = ::waitpid(pid, &status, WNOHANG)) == 0; ++tries) ::usleep(10000);
    if (waited == 0) {
      ++stuck;
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
    }
  }
  stop = true;
  writer.join();
  BOOST_TEST(stuck == 0, stuck << " of " << children << " children did not finish within 5 s");
  int child_lines = 0;
  for (const auto& text : read_lines(file)) child_lines += parse_line(text).at("msg").as_string() == "child";
  BOOST_TEST(child_lines == children - stuck);
}

BOOST_AUTO_TEST_SUITE_END()

}  // namespace log_tests
