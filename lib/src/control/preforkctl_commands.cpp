// The commands preforkctl knows: their names on the command line and on the socket, the
// argument each takes, and the help texts printed from them.
#include "control/preforkctl_internal.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <string>
#include <string_view>

namespace prefork::detail::preforkctl {
namespace {

constexpr std::array<command_spec, 14> commands{{
    {"ping", "ping", argument::none, "ping", "check that the master answers (prints pong)", ""},
    {"status", "status", argument::none, "status", "the master's state, generation, workers and listeners", ""},
    {"workers", "workers", argument::none, "workers", "a table of the workers", ""},
    {"stats", "stats", argument::none, "stats", "counters since the master started", ""},
    {"scale", "scale", argument::count, "scale N", "set the desired number of workers (N >= 1)", ""},
    {"reload", "reload", argument::none, "reload [--wait]", "start a new generation of workers",
     "  --wait               answer once the new generation serves and the old one is gone\n"},
    {"stop", "stop", argument::none, "stop [--fast]", "stop the master (gracefully)",
     "  --fast               workers get TERM at once instead of finishing their connections\n"},
    {"kill-worker", "kill_worker", argument::worker_id, "kill-worker ID [--signal KILL|TERM]",
     "signal worker ID (TERM: recycle it)", "  --signal KILL|TERM   the signal to send (default TERM)\n"},
    {"pause-worker", "pause_worker", argument::worker_id, "pause-worker ID",
     "worker ID keeps its connections but gets no new ones", ""},
    {"resume-worker", "resume_worker", argument::worker_id, "resume-worker ID", "undo pause-worker", ""},
    {"reopen-logs", "reopen_logs", argument::none, "reopen-logs", "reopen the log files (after logrotate)", ""},
    {"config", "config", argument::none, "config", "the master's effective configuration", ""},
    {"wait-ready", "", argument::none, "wait-ready [--timeout SECONDS]", "wait until every desired worker is ready",
     "  --timeout SECONDS    give up after this long (default 30) and exit 1\n"},
    {"help", "", argument::none, "help [COMMAND]", "print this help, or a command's", ""},
}};

}  // namespace

const command_spec* find_command(std::string_view name) {
  std::string normalized(name);
  std::replace(normalized.begin(), normalized.end(), '_', '-');  // kill_worker works too
  for (const auto& spec : commands)
    if (spec.name == normalized) return &spec;
  return nullptr;
}

std::string global_help() {
  std::string text =
      "Usage: preforkctl [-s SOCKET | -c FILE] [--json] COMMAND [ARGS]\n"
      "\n"
      "Talks to a running preforkd through its control socket.\n"
      "\n"
      "Options:\n"
      "  -s, --socket SOCKET  the control socket\n"
      "  -c, --config FILE    take the socket from preforkd's configuration file (key \"control\")\n"
      "      --json           print the result as JSON on one line\n"
      "  -h, --help           print this help; COMMAND --help prints the command's\n"
      "\n"
      "Commands:\n";
  for (const auto& spec : commands) {
    std::string line = "  " + std::string(spec.synopsis);
    constexpr std::size_t column = 40;
    if (line.size() < column)
      line.resize(column, ' ');
    else
      line += "\n" + std::string(column, ' ');
    text += line + std::string(spec.summary) + "\n";
  }
  text +=
      "\n"
      "The socket is SOCKET, else the \"control\" path of FILE, else $PREFORK_CONTROL, else\n"
      "run/preforkd.ctl; relative paths are relative to the working directory.\n"
      "\n"
      "Exit status: 0 done; 1 the master answered with an error (or wait-ready timed out);\n"
      "2 usage error; 3 cannot reach the master (not running, no permission).\n";
  return text;
}

std::string command_help(const command_spec& spec) {
  std::string text = "Usage: preforkctl [-s SOCKET | -c FILE] [--json] " + std::string(spec.synopsis) + "\n\n";
  std::string summary(spec.summary);
  if (!summary.empty()) summary[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(summary[0])));
  text += summary + ".\n";
  if (!spec.details.empty()) text += "\nOptions:\n" + std::string(spec.details);
  return text;
}

}  // namespace prefork::detail::preforkctl
