#include "prefork/bench.hpp"
#include "prefork/bind_address.hpp"

#include "config/parse_options.hpp"

#include <boost/program_options.hpp>

#include <charconv>
#include <cmath>
#include <sstream>

namespace prefork {
namespace po = boost::program_options;
namespace {

po::options_description option_descriptions() {
  po::options_description options("Options");
  options.add_options()("unix", po::value<std::string>()->value_name("PATH"), "target: a Unix socket path")(
      "tcp", po::value<std::string>()->value_name("HOST:PORT"), "target: a TCP address")(
      "connections,c", po::value<int>()->value_name("N")->default_value(64), "concurrent connections")(
      "duration,d", po::value<double>()->value_name("SECONDS"), "run this long")(
      "requests,n", po::value<std::uint64_t>()->value_name("N"),
      "start this many requests in all (with -d: whichever ends first)")(
      "mode", po::value<std::string>()->value_name("close|keepalive")->default_value("keepalive"),
      "close: a new connection per request; keepalive: reuse connections")(
      "path", po::value<std::string>()->value_name("PATH")->default_value("/"), "path of the (fast) requests")(
      "mix", po::value<std::string>()->value_name("PATH:K/N"),
      "send K of every N requests to PATH (slow requests, timed apart)")(
      "timeout", po::value<double>()->value_name("SECONDS")->default_value(5),
      "deadline of each request, connect included")("threads", po::value<int>()->value_name("N")->default_value(1),
                                                    "client threads, each with its own epoll")(
      "expect-status", po::value<unsigned>()->value_name("CODE")->default_value(200),
      "a response with another status counts as bad_status")(
      "host", po::value<std::string>()->value_name("NAME")->default_value("localhost"), "Host header")(
      "help,h", "print this help and exit");
  return options;
}

failure option_error(std::string_view option, std::string_view why) {
  return {errc::usage, "\"--" + std::string(option) + "\": " + std::string(why)};
}

// A request path: starts with '/', no whitespace or control bytes (it goes into prebuilt
// request bytes as is).
bool is_request_path(std::string_view path) {
  if (!path.starts_with('/')) return false;
  for (const char c : path) {
    if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f) return false;
  }
  return true;
}

prefork::result<bench_mix> parse_mix(std::string_view text) {
  const auto colon = text.rfind(':');
  if (colon == std::string_view::npos) return option_error("mix", "expected PATH:K/N, e.g. /burn?ms=20:1/50");
  bench_mix mix;
  mix.path = std::string(text.substr(0, colon));
  if (!is_request_path(mix.path)) return option_error("mix", "the path must start with '/' and have no spaces");
  const auto ratio = text.substr(colon + 1);
  const auto slash = ratio.find('/');
  if (slash == std::string_view::npos) return option_error("mix", "expected K/N after the path, e.g. 1/50");
  const auto parse = [](std::string_view digits, std::uint32_t& value) {
    const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), value);
    return !digits.empty() && ec == std::errc{} && end == digits.data() + digits.size();
  };
  if (!parse(ratio.substr(0, slash), mix.numerator) || !parse(ratio.substr(slash + 1), mix.denominator) ||
      mix.numerator < 1 || mix.denominator < mix.numerator) {
    return option_error("mix", "K/N must be integers with 1 <= K <= N");
  }
  return mix;
}

}  // namespace

prefork::result<bench_command> parse_bench_command_line(int argc, const char* const* argv) {
  const auto descriptions = option_descriptions();  // the parsed values point into it
  auto parsed = detail::parse_options(argc, argv, descriptions);
  if (!parsed) return parsed.error();
  const po::variables_map& values = *parsed;

  bench_command command;
  if (values.count("help") != 0) {
    command.show_help = true;
    return command;
  }
  auto& options = command.options;
  const bool has_unix = values.count("unix") != 0;
  const bool has_tcp = values.count("tcp") != 0;
  if (has_unix == has_tcp) return failure{errc::usage, "give one target: --unix PATH or --tcp HOST:PORT"};
  if (has_unix) {
    auto address = parse_bind_address("unix:" + values["unix"].as<std::string>());
    if (!address) return option_error("unix", address.error().message);
    options.target = bench_options::target_kind::unix_path;
    options.unix_path = address->path;
  } else {
    const auto text = values["tcp"].as<std::string>();
    auto address = parse_bind_address(text);
    if (!address || address->type != bind_address::kind::tcp || address->port == 0) {
      return option_error("tcp", "expected HOST:PORT with a port 1..65535, got \"" + text + "\"");
    }
    options.target = bench_options::target_kind::tcp;
    options.tcp_host = address->host;
    options.tcp_port = address->port;
  }

  options.connections = values["connections"].as<int>();
  if (options.connections < 1) return option_error("connections", "must be at least 1");
  if (values.count("duration") != 0) {
    const double duration = values["duration"].as<double>();
    if (!std::isfinite(duration) || duration <= 0) return option_error("duration", "must be a number of seconds > 0");
    options.duration_s = duration;
  }
  if (values.count("requests") != 0) {
    options.requests = values["requests"].as<std::uint64_t>();
    if (*options.requests < 1) return option_error("requests", "must be at least 1");
  }
  if (!options.duration_s && !options.requests)
    return failure{errc::usage, "give -d SECONDS or -n REQUESTS (a run must end)"};

  const auto mode = values["mode"].as<std::string>();
  if (mode == "close") {
    options.mode = bench_mode::close;
  } else if (mode == "keepalive" || mode == "keep-alive") {
    options.mode = bench_mode::keep_alive;
  } else {
    return option_error("mode", "expected close or keepalive, got \"" + mode + "\"");
  }
  options.path = values["path"].as<std::string>();
  if (!is_request_path(options.path)) return option_error("path", "must start with '/' and have no spaces");
  if (values.count("mix") != 0) {
    auto mix = parse_mix(values["mix"].as<std::string>());
    if (!mix) return mix.error();
    options.mix = std::move(*mix);
  }
  options.timeout_s = values["timeout"].as<double>();
  if (!std::isfinite(options.timeout_s) || options.timeout_s <= 0 || options.timeout_s > 3600) {
    return option_error("timeout", "must be a number of seconds in (0, 3600]");
  }
  options.threads = values["threads"].as<int>();
  if (options.threads < 1 || options.threads > 256) return option_error("threads", "must be 1..256");
  if (options.threads > options.connections) return option_error("threads", "must not exceed -c (connections)");
  options.expected_status = values["expect-status"].as<unsigned>();
  if (options.expected_status < 100 || options.expected_status > 999) {
    return option_error("expect-status", "must be a status code 100..999");
  }
  options.host_header = values["host"].as<std::string>();
  for (const char c : options.host_header) {
    if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f) return option_error("host", "must have no spaces");
  }
  return command;
}

std::string bench_usage_text(std::string_view program_name) {
  std::ostringstream text;
  text << "Usage: " << program_name << " (--unix PATH | --tcp HOST:PORT) (-d SECONDS | -n REQUESTS)\n"
       << std::string(program_name.size() + 8, ' ') << "[-c N] [--mode close|keepalive] [--path PATH]\n"
       << std::string(program_name.size() + 8, ' ') << "[--mix PATH:K/N] [--threads N] [--timeout S]\n"
       << "\nAn HTTP/1.1 load generator: -c connections spread over --threads epoll threads send\n"
       << "GET requests back to back and time each one, and one line of JSON with requests,\n"
       << "errors by kind, requests per second and latency percentiles (all, fast and slow\n"
       << "requests) is printed on stdout. In close mode the latency includes the connect.\n\n"
       << option_descriptions() << "\nExit status: 0 after a run (failed requests are counted in the JSON), 1 the run\n"
       << "cannot start, 2 usage error.\n";
  return text.str();
}

}  // namespace prefork
