// prometheus_histogram and render_metrics: the text is parsed back by a small exposition-format
// parser that enforces the format's rules (HELP/TYPE once per family and before its samples,
// grouped samples, valid names and values, unique series, cumulative histogram buckets).
#include "ops/metrics.hpp"

#include <boost/test/unit_test.hpp>

#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace {

using prefork::detail::metrics_snapshot;
using prefork::detail::prometheus_histogram;
using prefork::detail::render_metrics;
using namespace std::chrono_literals;

// ---------------------------------------------------------------------------------------
// A parser for the text format 0.0.4, strict about what our output must satisfy. It throws
// std::runtime_error naming the line and the rule broken.

struct sample {
  std::string name;
  std::map<std::string, std::string> labels;
  std::string raw_value;
  double value = 0;
};

struct family {
  std::string help;
  std::string type;
  std::vector<sample> samples;
};

using exposition = std::map<std::string, family>;

bool is_metric_name(std::string_view name) {
  if (name.empty()) return false;
  for (std::size_t i = 0; i < name.size(); ++i) {
    const auto c = static_cast<unsigned char>(name[i]);
    const bool ok = std::isalpha(c) || c == '_' || c == ':' || (i > 0 && std::isdigit(c));
    if (!ok) return false;
  }
  return true;
}

bool is_label_name(std::string_view name) { return is_metric_name(name) && name.find(':') == std::string_view::npos; }

double parse_value(const std::string& text) {
  if (text == "+Inf") return HUGE_VAL;
  if (text == "-Inf") return -HUGE_VAL;
  if (text == "NaN") return std::nan("");
  char* end = nullptr;
  const double value = std::strtod(text.c_str(), &end);
  if (text.empty() || end != text.c_str() + text.size() || std::isnan(value) || std::isinf(value)) {
    throw std::runtime_error("bad value \"" + text + "\"");
  }
  return value;
}

// The family a sample name belongs to, given the families declared so far.
std::string family_of(const std::string& name, const exposition& families) {
  if (families.count(name) != 0) return name;
  for (const char* suffix : {"_bucket", "_sum", "_count"}) {
    const std::string_view s(suffix);
    if (name.size() > s.size() && name.compare(name.size() - s.size(), s.size(), s) == 0) {
      const std::string base = name.substr(0, name.size() - s.size());
      const auto found = families.find(base);
      if (found != families.end() && found->second.type == "histogram") return base;
    }
  }
  return {};
}

sample parse_sample(std::string_view line) {
  sample result;
  std::size_t i = 0;
  while (i < line.size() && line[i] != '{' && line[i] != ' ') ++i;
  result.name = std::string(line.substr(0, i));
  if (!is_metric_name(result.name)) throw std::runtime_error("bad metric name");
  if (i < line.size() && line[i] == '{') {
    ++i;
    while (true) {
      if (i < line.size() && line[i] == '}') {
        ++i;
        break;
      }
      std::size_t eq = line.find('=', i);
      if (eq == std::string_view::npos) throw std::runtime_error("label without '='");
      const std::string label(line.substr(i, eq - i));
      if (!is_label_name(label)) throw std::runtime_error("bad label name \"" + label + "\"");
      i = eq + 1;
      if (i >= line.size() || line[i] != '"') throw std::runtime_error("label value not quoted");
      ++i;
      std::string value;
      while (true) {
        if (i >= line.size()) throw std::runtime_error("unterminated label value");
        const char c = line[i++];
        if (c == '"') break;
        if (c == '\\') {
          if (i >= line.size()) throw std::runtime_error("dangling escape");
          const char e = line[i++];
          if (e == 'n') {
            value += '\n';
          } else if (e == '\\' || e == '"') {
            value += e;
          } else {
            throw std::runtime_error("bad escape");
          }
        } else {
          value += c;
        }
      }
      if (!result.labels.emplace(label, value).second) throw std::runtime_error("duplicate label");
      if (i < line.size() && line[i] == ',') ++i;
    }
  }
  if (i >= line.size() || line[i] != ' ') throw std::runtime_error("no space before the value");
  result.raw_value = std::string(line.substr(i + 1));
  if (result.raw_value.find(' ') != std::string::npos) throw std::runtime_error("timestamps are not expected");
  result.value = parse_value(result.raw_value);
  return result;
}

void check_histogram(const std::string& name, const family& f) {
  double previous_le = -HUGE_VAL;
  double previous_count = 0;
  bool saw_inf = false;
  const sample* sum = nullptr;
  const sample* count = nullptr;
  for (const sample& s : f.samples) {
    if (s.name == name + "_bucket") {
      if (s.labels.size() != 1 || s.labels.count("le") == 0) throw std::runtime_error(name + ": bucket without le");
      if (saw_inf) throw std::runtime_error(name + ": bucket after +Inf");
      const double le = parse_value(s.labels.at("le"));
      if (!(le > previous_le)) throw std::runtime_error(name + ": le not ascending");
      if (s.value < previous_count) throw std::runtime_error(name + ": buckets not cumulative");
      previous_le = le;
      previous_count = s.value;
      saw_inf = std::isinf(le);
    } else if (s.name == name + "_sum") {
      sum = &s;
    } else if (s.name == name + "_count") {
      count = &s;
    } else {
      throw std::runtime_error(name + ": unexpected sample " + s.name);
    }
  }
  if (!saw_inf) throw std::runtime_error(name + ": no +Inf bucket");
  if (sum == nullptr || count == nullptr) throw std::runtime_error(name + ": missing _sum or _count");
  if (count->value != previous_count) throw std::runtime_error(name + ": _count differs from the +Inf bucket");
}

exposition parse_exposition(std::string_view text) {
  exposition families;
  std::set<std::string> series;
  std::string current;  // the family whose samples are being read
  std::set<std::string> finished;
  if (text.empty() || text.back() != '\n') throw std::runtime_error("the text must end with a newline");
  int line_number = 0;
  std::size_t start = 0;
  try {
    while (start < text.size()) {
      const std::size_t end = text.find('\n', start);
      const std::string_view line = text.substr(start, end - start);
      start = end + 1;
      ++line_number;
      if (line.empty()) throw std::runtime_error("empty line");
      if (line.find('\r') != std::string_view::npos) throw std::runtime_error("carriage return");
      if (line.rfind("# ", 0) == 0) {
        const std::string_view rest = line.substr(2);
        const std::size_t space1 = rest.find(' ');
        const std::size_t space2 = rest.find(' ', space1 + 1);
        if (space1 == std::string_view::npos || space2 == std::string_view::npos) {
          throw std::runtime_error("short comment line");
        }
        const std::string keyword(rest.substr(0, space1));
        const std::string name(rest.substr(space1 + 1, space2 - space1 - 1));
        const std::string value(rest.substr(space2 + 1));
        if (!is_metric_name(name)) throw std::runtime_error("bad name in " + keyword);
        if (finished.count(name) != 0) throw std::runtime_error(name + ": family declared twice");
        if (name != current && !current.empty()) finished.insert(current);
        current = name;
        family& f = families[name];
        if (!f.samples.empty()) throw std::runtime_error(name + ": " + keyword + " after samples");
        if (keyword == "HELP") {
          if (!f.help.empty()) throw std::runtime_error(name + ": two HELP lines");
          if (value.empty()) throw std::runtime_error(name + ": empty HELP");
          f.help = value;
        } else if (keyword == "TYPE") {
          if (!f.type.empty()) throw std::runtime_error(name + ": two TYPE lines");
          if (value != "counter" && value != "gauge" && value != "histogram") {
            throw std::runtime_error(name + ": unexpected type " + value);
          }
          f.type = value;
        } else {
          throw std::runtime_error("unknown comment keyword " + keyword);
        }
        continue;
      }
      if (line.front() == '#') throw std::runtime_error("comment without a space");
      sample s = parse_sample(line);
      const std::string name = family_of(s.name, families);
      if (name.empty()) throw std::runtime_error(s.name + ": sample of an undeclared family");
      if (name != current) throw std::runtime_error(s.name + ": samples of " + name + " are not grouped");
      family& f = families[name];
      if (f.type.empty()) throw std::runtime_error(name + ": sample before TYPE");
      if (f.type == "counter" && (s.value < 0 || name.size() < 6 || name.substr(name.size() - 6) != "_total")) {
        throw std::runtime_error(name + ": counters are non-negative and end in _total");
      }
      std::string key = s.name + "{";
      for (const auto& [label, value] : s.labels) key += label + "=" + value + ",";
      if (!series.insert(key).second) throw std::runtime_error(key + ": duplicate series");
      f.samples.push_back(std::move(s));
    }
    for (const auto& [name, f] : families) {
      if (f.help.empty() || f.type.empty()) throw std::runtime_error(name + ": missing HELP or TYPE");
      if (f.samples.empty()) throw std::runtime_error(name + ": no sample");
      if (f.type == "histogram") check_histogram(name, f);
    }
  } catch (const std::runtime_error& e) {
    throw std::runtime_error("line " + std::to_string(line_number) + ": " + e.what());
  }
  return families;
}

/// The one sample of `name` with exactly `labels`; fails the test if absent.
const sample& find_sample(const exposition& families, const std::string& name,
                          const std::map<std::string, std::string>& labels = {}) {
  static const sample missing{};
  for (const auto& [family_name, f] : families) {
    for (const sample& s : f.samples) {
      if (s.name == name && s.labels == labels) return s;
    }
  }
  BOOST_TEST_FAIL("no sample " << name);
  return missing;
}

exposition parse_or_fail(const std::string& text) {
  try {
    return parse_exposition(text);
  } catch (const std::runtime_error& e) {
    BOOST_TEST_FAIL("invalid exposition: " << e.what() << "\n" << text);
  }
  return {};
}

metrics_snapshot numbered_snapshot() {
  metrics_snapshot s;
  s.accepted = 1;
  s.dispatched = 2;
  s.redispatched = 3;
  s.migrated = 4;
  s.lost = 5;
  s.accept_pauses = 6;
  s.worker_exits = 7;
  s.worker_crashes = 8;
  s.worker_timeouts = 9;
  s.worker_recycled = 10;
  s.reloads = 11;
  s.requests = 12;
  s.desired_workers = 13;
  s.generation = 14;
  s.uptime_seconds = 15.5;
  return s;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(metrics)

BOOST_AUTO_TEST_CASE(counters_and_gauges_carry_the_snapshot) {
  const exposition families = parse_or_fail(render_metrics(numbered_snapshot()));
  const std::vector<std::pair<std::string, double>> expected{
      {"prefork_connections_accepted_total", 1},
      {"prefork_connections_dispatched_total", 2},
      {"prefork_connections_redispatched_total", 3},
      {"prefork_connections_migrated_total", 4},
      {"prefork_connections_lost_total", 5},
      {"prefork_accept_pauses_total", 6},
      {"prefork_worker_exits_total", 7},
      {"prefork_worker_crashes_total", 8},
      {"prefork_worker_timeouts_total", 9},
      {"prefork_worker_restarts_total", 7},  // every exit is replaced
      {"prefork_worker_recycled_total", 10},
      {"prefork_reloads_total", 11},
      {"prefork_requests_total", 12},
      {"prefork_workers_desired", 13},
      {"prefork_generation", 14},
      {"prefork_uptime_seconds", 15.5},
  };
  for (const auto& [name, value] : expected) {
    BOOST_TEST(find_sample(families, name).value == value, name);
    const auto found = families.find(name);
    BOOST_TEST_REQUIRE((found != families.end()), name << " is a family");
    const bool is_counter = name.size() > 6 && name.substr(name.size() - 6) == "_total";
    BOOST_TEST(found->second.type == (is_counter ? "counter" : "gauge"), name);
  }
  BOOST_TEST(families.at("prefork_workers").type == "gauge");
  BOOST_TEST(families.at("prefork_handoff_latency_seconds").type == "histogram");
  BOOST_TEST(families.size() == expected.size() + 2);
}

BOOST_AUTO_TEST_CASE(large_counters_are_exact) {
  metrics_snapshot s;
  s.requests = 18446744073709551615u;
  s.generation = 9007199254740993u;  // not representable as a double
  const exposition families = parse_or_fail(render_metrics(s));
  BOOST_TEST(find_sample(families, "prefork_requests_total").raw_value == "18446744073709551615");
  BOOST_TEST(find_sample(families, "prefork_generation").raw_value == "9007199254740993");
  BOOST_TEST(find_sample(families, "prefork_uptime_seconds").raw_value == "0");
}

BOOST_AUTO_TEST_CASE(every_worker_state_is_listed) {
  metrics_snapshot s;
  s.workers_by_state = {{"ready", 3}, {"draining", 1}};
  exposition families = parse_or_fail(render_metrics(s));
  const std::map<std::string, double> expected{
      {"starting", 0}, {"ready", 3}, {"draining", 1}, {"paused", 0}, {"backoff", 0}};
  BOOST_TEST(families.at("prefork_workers").samples.size() == expected.size());
  for (const auto& [state, count] : expected) {
    BOOST_TEST(find_sample(families, "prefork_workers", {{"state", state}}).value == count, state);
  }

  // An unexpected name is printed too, escaped.
  s.workers_by_state = {{"odd \"one\"\\\n", 2}};
  families = parse_or_fail(render_metrics(s));
  BOOST_TEST(families.at("prefork_workers").samples.size() == expected.size() + 1);
  BOOST_TEST(find_sample(families, "prefork_workers", {{"state", "odd \"one\"\\\n"}}).value == 2);
}

BOOST_AUTO_TEST_CASE(histogram_buckets_are_cumulative) {
  prometheus_histogram h;
  // 0 and -5 ns (as 0), 500 ns and exactly 1 us: le 1e-06; 1001 ns: le 2.5e-06;
  // 3 ms: le 0.005; exactly 1 s: le 1; 2 s: only +Inf.
  for (const auto latency : {0ns, -5ns, 500ns, 1000ns, 1001ns, std::chrono::nanoseconds(3ms),
                             std::chrono::nanoseconds(1s), std::chrono::nanoseconds(2s)}) {
    h.record(latency);
  }
  BOOST_TEST(h.count() == 8u);
  BOOST_TEST(h.sum().count() == 500 + 1000 + 1001 + 3'000'000 + 1'000'000'000 + 2'000'000'000LL);
  BOOST_TEST(h.cumulative_count(0) == 4u);
  BOOST_TEST(h.cumulative_count(1) == 5u);
  BOOST_TEST(h.cumulative_count(prometheus_histogram::bucket_count) == 8u);

  metrics_snapshot s;
  s.handoff = &h;
  const exposition families = parse_or_fail(render_metrics(s));
  const std::map<std::string, double> expected{
      {"1e-06", 4},   {"2.5e-06", 5}, {"5e-06", 5}, {"1e-05", 5},  {"2.5e-05", 5}, {"5e-05", 5}, {"0.0001", 5},
      {"0.00025", 5}, {"0.0005", 5},  {"0.001", 5}, {"0.0025", 5}, {"0.005", 6},   {"0.01", 6},  {"0.025", 6},
      {"0.05", 6},    {"0.1", 6},     {"0.25", 6},  {"0.5", 6},    {"1", 7},       {"+Inf", 8}};
  BOOST_TEST(families.at("prefork_handoff_latency_seconds").samples.size() == expected.size() + 2);
  for (const auto& [le, count] : expected) {
    BOOST_TEST(find_sample(families, "prefork_handoff_latency_seconds_bucket", {{"le", le}}).value == count, le);
  }
  BOOST_TEST(find_sample(families, "prefork_handoff_latency_seconds_count").value == 8);
  BOOST_TEST(find_sample(families, "prefork_handoff_latency_seconds_sum").value == 3.003002501,
             boost::test_tools::tolerance(1e-12));
}

BOOST_AUTO_TEST_CASE(missing_histogram_is_empty) {
  const exposition families = parse_or_fail(render_metrics(metrics_snapshot{}));
  for (const sample& s : families.at("prefork_handoff_latency_seconds").samples) {
    BOOST_TEST(s.value == 0, s.name);
  }
  BOOST_TEST(find_sample(families, "prefork_handoff_latency_seconds_bucket", {{"le", "+Inf"}}).value == 0);
}

BOOST_AUTO_TEST_CASE(bucket_labels_match_bounds) {
  for (std::size_t i = 0; i < prometheus_histogram::bucket_count; ++i) {
    const double seconds = std::strtod(std::string(prometheus_histogram::upper_bound_labels[i]).c_str(), nullptr);
    BOOST_TEST(std::llround(seconds * 1e9) == prometheus_histogram::upper_bounds[i].count(), i);
    if (i > 0) BOOST_TEST((prometheus_histogram::upper_bounds[i - 1] < prometheus_histogram::upper_bounds[i]));
  }
  BOOST_TEST(prometheus_histogram::upper_bounds.front() == std::chrono::nanoseconds(1us));
  BOOST_TEST(prometheus_histogram::upper_bounds.back() == std::chrono::nanoseconds(1s));
}

BOOST_AUTO_TEST_CASE(every_family_has_help_and_type_first) {
  const std::string text = render_metrics(numbered_snapshot());
  // The parser enforces the rules; check its verdict and the line shapes it relies on.
  BOOST_CHECK_NO_THROW(parse_exposition(text));
  std::size_t help = 0;
  std::size_t type = 0;
  std::size_t start = 0;
  std::string previous;
  while (start < text.size()) {
    const std::size_t end = text.find('\n', start);
    const std::string line = text.substr(start, end - start);
    start = end + 1;
    if (line.rfind("# HELP ", 0) == 0) ++help;
    if (line.rfind("# TYPE ", 0) == 0) {
      ++type;
      // TYPE directly follows the HELP of the same family.
      BOOST_TEST(previous.rfind("# HELP " + line.substr(7, line.find(' ', 7) - 7) + " ", 0) == 0u, line);
    }
    previous = line;
  }
  BOOST_TEST(help == 18u);
  BOOST_TEST(type == 18u);
}

// The parser must reject what breaks the rules, or the checks above prove nothing.
BOOST_AUTO_TEST_CASE(parser_rejects_invalid_text) {
  const std::vector<std::string> invalid{
      "",
      "# HELP a_total x\n# TYPE a_total counter\na_total 1",                 // no final newline
      "a_total 1\n",                                                         // no HELP/TYPE
      "# HELP a_total x\na_total 1\n",                                       // no TYPE
      "# HELP a_total x\n# TYPE a_total counter\na_total one\n",             // bad value
      "# HELP a x\n# TYPE a counter\na 1\n",                                 // counter without _total
      "# HELP g x\n# TYPE g gauge\ng{s=\"a\"} 1\ng{s=\"a\"} 2\n",            // duplicate series
      "# HELP g x\n# TYPE g gauge\ng{s=a} 1\n",                              // unquoted label
      "# HELP g x\n# TYPE g gauge\n# HELP h x\n# TYPE h gauge\nh 1\ng 1\n",  // not grouped
      "# HELP h x\n# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n",
      "# HELP h x\n# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_sum 1\nh_count 1\n",     // no +Inf
      "# HELP h x\n# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_sum 1\nh_count 1\n",  // count differs
  };
  for (const std::string& text : invalid) {
    BOOST_CHECK_THROW(parse_exposition(text), std::runtime_error);
  }
  BOOST_CHECK_NO_THROW(parse_exposition("# HELP g x\n# TYPE g gauge\ng{s=\"a\\\"b\"} 1.5\n"));
}

BOOST_AUTO_TEST_SUITE_END()
