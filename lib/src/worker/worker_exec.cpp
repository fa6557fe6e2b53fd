#include "worker/worker_exec.hpp"

#include "prefork/log.hpp"

#include <boost/json/serialize.hpp>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <fcntl.h>
#include <string_view>
#include <unistd.h>

namespace prefork::detail {

namespace {

constexpr std::string_view protocol_version = "1";

bool not_for_the_worker(std::string_view entry) {
  for (std::string_view prefix : {"NOTIFY_SOCKET=", "LISTEN_", "WATCHDOG_", "PREFORK_PROTOCOL=", "PREFORK_CHANNEL_FD=",
                                  "PREFORK_WORKER_ID=", "PREFORK_GENERATION=", "PREFORK_CONFIG="})
    if (entry.starts_with(prefix)) return true;
  return false;
}

/// Puts `from` on descriptor `to` without close-on-exec; false (errno set) on failure.
bool move_descriptor(int from, int to) {
  if (from == to) return ::fcntl(to, F_SETFD, 0) == 0;
  return ::dup2(from, to) == to;  // dup2 clears FD_CLOEXEC on the copy
}

[[noreturn]] void fail(const worker_launch& launch, std::string_view step) {
  log_error("cannot exec the worker command",
            {{"command", exec_command_text(*launch.settings)}, {"step", step}, {"error", std::strerror(errno)}});
  ::_exit(127);
}

}  // namespace

std::string exec_command_text(const config& settings) {
  std::string text;
  for (const auto& argument : settings.exec) text += (text.empty() ? "" : " ") + argument;
  return text;
}

std::vector<std::string> exec_environment(const char* const* inherited, const worker_launch& launch) {
  std::vector<std::string> environment;
  for (const char* const* entry = inherited; entry != nullptr && *entry != nullptr; ++entry)
    if (!not_for_the_worker(*entry)) environment.emplace_back(*entry);
  environment.push_back("PREFORK_PROTOCOL=" + std::string(protocol_version));
  environment.push_back("PREFORK_CHANNEL_FD=" + std::to_string(exec_channel_fd));
  environment.push_back("PREFORK_WORKER_ID=" + std::to_string(launch.id));
  environment.push_back("PREFORK_GENERATION=" + std::to_string(launch.generation));
  environment.push_back("PREFORK_CONFIG=" + boost::json::serialize(to_json(*launch.settings)));
  return environment;
}

void exec_worker(const worker_launch& launch) {
  const std::vector<std::string>& command = launch.settings->exec;
  // Everything is built before the descriptors move: an allocation failure must still
  // find the log where it was.
  std::vector<std::string> environment = exec_environment(environ, launch);
  std::vector<char*> argv;
  for (const auto& argument : command) argv.push_back(const_cast<char*>(argument.c_str()));
  argv.push_back(nullptr);
  std::vector<char*> envp;
  for (auto& entry : environment) envp.push_back(entry.data());
  envp.push_back(nullptr);

  // 1. the log destination becomes stderr (the worker writes its lines there);
  const int log_fd = log_descriptor();
  if (log_fd != STDERR_FILENO) {
    if (::dup2(log_fd, STDERR_FILENO) != STDERR_FILENO) fail(launch, "dup2 log");
    log_config to_stderr = launch.settings->log;
    to_stderr.file = "-";
    (void)init_logging(to_stderr);  // closes the file's own descriptor: 2 is the log now
  }
  // 2. the channel moves to descriptor 3 (it may clobber the log file's descriptor, which
  //    is on 2 now), blocking, kept across exec; every other descriptor above it closes;
  if (!move_descriptor(launch.channel_fd, exec_channel_fd)) fail(launch, "dup2 channel");
  const int flags = ::fcntl(exec_channel_fd, F_GETFL);
  if (flags < 0 || ::fcntl(exec_channel_fd, F_SETFL, flags & ~O_NONBLOCK) != 0) fail(launch, "channel flags");
  ::close_range(exec_channel_fd + 1, ~0U, 0);
  // 3. signals as a fresh program expects them: none blocked (the master blocks the ones
  //    it reads through a signalfd), default dispositions (SIGPIPE is ignored here);
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  for (int sig = 1; sig < NSIG; ++sig)
    if (sig != SIGKILL && sig != SIGSTOP) (void)std::signal(sig, SIG_DFL);
  // 4. the command, found in PATH.
  ::execvpe(argv[0], argv.data(), envp.data());
  fail(launch, "execvp");
}

}  // namespace prefork::detail
