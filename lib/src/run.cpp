#include "prefork/run.hpp"

#include "prefork/cli.hpp"
#include "prefork/config.hpp"
#include "prefork/detail/fd_limits.hpp"
#include "prefork/detail/listener.hpp"
#include "prefork/detail/master.hpp"
#include "prefork/detail/signal_reader.hpp"
#include "prefork/log.hpp"

#include <boost/json.hpp>

#include <csignal>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <unistd.h>

namespace prefork {

std::string_view version() noexcept { return PREFORK_VERSION; }

namespace {

int fail(std::string_view program, const std::string& message, int status) {
  std::cerr << program << ": " << message << "\n";
  return status;
}

const app* find_app(const std::vector<app>& apps, const std::string& name) {
  for (const auto& a : apps)
    if (a.name == name) return &a;
  return nullptr;
}

std::string app_names(const std::vector<app>& apps) {
  std::string names;
  for (const auto& a : apps) names += (names.empty() ? "" : ", ") + a.name;
  return names;
}

/// Writes the pid file; returns false (after logging) when it cannot.
bool write_pid_file(const std::string& path) {
  std::ofstream out(path, std::ios::trunc);
  out << ::getpid() << "\n";
  out.flush();
  if (!out) {
    log_error("cannot write pid file", {{"path", path}});
    return false;
  }
  return true;
}

}  // namespace

int run(int argc, const char* const* argv, std::vector<app> apps) {
  std::string_view program = argc > 0 ? argv[0] : "preforkd";
  if (auto slash = program.rfind('/'); slash != std::string_view::npos) program.remove_prefix(slash + 1);

  auto command = parse_command_line(argc, argv);
  if (!command) return fail(program, command.error().message + " (see --help)", 2);
  if (command->show_help) {
    std::cout << usage_text(program);
    return 0;
  }
  if (command->show_version) {
    std::cout << program << " " << version() << "\n";
    return 0;
  }
  auto settings = effective_config(*command);
  if (!settings) return fail(program, settings.error().message, 2);
  const app* application = find_app(apps, settings->app);
  if (application == nullptr)
    return fail(program, "\"app\": unknown app \"" + settings->app + "\" (available: " + app_names(apps) + ")", 2);
  if (command->check_config) {
    std::cout << boost::json::serialize(to_json(*settings)) << "\n";
    return 0;
  }

  if (auto ec = init_logging(settings->log))
    return fail(program, "\"log.file\": cannot open \"" + settings->log.file + "\": " + ec.message(), 2);
  set_log_identity(log_role::master);

  // Signals: SIGPIPE never kills us (a client that goes away is an error value); the
  // handled ones are blocked before any fork and read through a signalfd.
  std::signal(SIGPIPE, SIG_IGN);
  detail::block_handled_signals();

  // The master holds every descriptor until a worker acknowledges it.
  if (auto limit = detail::raise_open_file_limit(); !limit)
    log_warning("cannot raise the open file limit", {{"error", limit.error().message()}});

  std::vector<detail::listener> listeners;
  for (const auto& where : settings->bind) {
    auto opened = detail::open_listener(where, settings->backlog, settings->socket_mode_bits);
    if (!opened) {
      log_fatal("cannot listen", {{"bind", to_string(where)}, {"error", opened.error().message}});
      for (auto& l : listeners) detail::close_listener(l);
      return exit_status_for(opened.error().code);
    }
    listeners.push_back(std::move(*opened));
  }

  if (settings->pid_file && !write_pid_file(*settings->pid_file)) {
    for (auto& l : listeners) detail::close_listener(l);
    return 1;
  }
  int status = 1;
  try {
    status = detail::run_master(*settings, *application, std::move(listeners));
  } catch (const std::exception& e) {
    log_fatal("master failed", {{"error", e.what()}});
  }
  if (settings->pid_file) ::unlink(settings->pid_file->c_str());
  return status;
}

}  // namespace prefork
