#include "prefork/run.hpp"

#include "core/signal_reader.hpp"
#include "master/master.hpp"
#include "master/upgrade_handover.hpp"
#include "net/fd_limits.hpp"
#include "net/listener.hpp"
#include "net/socket_activation.hpp"
#include "ops/systemd_notify.hpp"
#include "prefork/cli.hpp"
#include "prefork/config.hpp"
#include "prefork/log.hpp"

#include <boost/json.hpp>

#include <climits>
#include <csignal>
#include <cstdio>
#include <filesystem>
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

/// The program's name: run_options' name, else argv[0] without its directory.
std::string program_name(int argc, const char* const* argv, const run_options& options) {
  if (!options.name.empty()) return options.name;
  std::string_view name = argc > 0 && argv[0] != nullptr && *argv[0] != '\0' ? argv[0] : "preforkd";
  if (auto slash = name.rfind('/'); slash != std::string_view::npos) name.remove_prefix(slash + 1);
  return std::string(name);
}

/// The rules the program adds to the file's: its apps (the first is the default app), their
/// own sections, and its defaults, checked like a file.
prefork::result<config_rules> program_rules(const std::vector<app>& apps, const run_options& options) {
  config_rules rules;
  const auto own_keys = to_json(default_config()).as_object();
  for (const auto& a : apps) {
    rules.apps.push_back(a.name);
    if (a.config_key.empty()) {
      if (a.check_config)
        return failure{errc::config_invalid, "app \"" + a.name + "\": check_config needs a config_key"};
      continue;
    }
    if (own_keys.contains(a.config_key))
      return failure{errc::config_invalid,
                     "app \"" + a.name + "\": its config_key \"" + a.config_key + "\" is one of prefork's own keys"};
    rules.sections.push_back({a.config_key, a.check_config});
  }
  rules.defaults.app = apps.front().name;
  if (!options.defaults.empty()) {
    // The defaults' sections are checked with the file's, once the file may have replaced them.
    config_rules unchecked = rules;
    for (auto& section : unchecked.sections) section.check = nullptr;
    auto defaults = parse_config(boost::json::serialize(options.defaults), unchecked);
    if (!defaults) return failure{errc::config_invalid, "program defaults: " + defaults.error().message};
    rules.defaults = std::move(*defaults);
  }
  return rules;
}

/// --help's details: the description, the apps (the default first), the defaults.
help_details help_for(const run_options& options, const config_rules& rules) {
  help_details details;
  details.description = options.description;
  details.apps.push_back(rules.defaults.app);
  for (const auto& name : rules.apps)
    if (name != rules.defaults.app) details.apps.push_back(name);
  details.defaults = rules.defaults;
  return details;
}

/// What to do when a Unix socket's directory is missing (the error already names it), to
/// append to the error; "" when the directory exists.
std::string missing_directory_hint(const std::string& path, std::string_view alternatives) {
  std::error_code ec;
  const auto directory = std::filesystem::absolute(path, ec).parent_path();
  if (ec || std::filesystem::is_directory(directory, ec)) return {};
  return " (create it first, or " + std::string(alternatives) + ")";
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

/// Writes the pid file (replacing a stale one); returns false (after logging) when it cannot.
bool write_pid_file(const std::string& path) {
  std::ofstream out(path, std::ios::trunc);
  out << ::getpid() << "\n";
  out.flush();
  if (!out) {
    log_fatal("cannot write pid file", {{"path", path}});
    return false;
  }
  return true;
}

/// Removes the pid file if it still names us (after an upgrade it names our successor).
void remove_pid_file(const std::string& path) {
  std::ifstream in(path);
  long pid = 0;
  if (in >> pid && pid == ::getpid()) ::unlink(path.c_str());
}

std::string executable_path() {
  char path[PATH_MAX];
  ssize_t n = ::readlink("/proc/self/exe", path, sizeof path - 1);
  if (n <= 0) return {};
  return std::string(path, static_cast<std::size_t>(n));
}

void close_all(std::vector<detail::listener>& listeners) {
  for (auto& l : listeners) detail::close_listener(l);
}

}  // namespace

int run(int argc, const char* const* argv, std::vector<app> apps) { return run(argc, argv, std::move(apps), {}); }

int run(int argc, const char* const* argv, std::vector<app> apps, run_options options) {
  const std::string program = program_name(argc, argv, options);
  if (apps.empty()) return fail(program, "no app to serve: prefork::run was given none", 2);

  auto command = parse_command_line(argc, argv);
  if (!command) return fail(program, command.error().message + " (see --help)", exit_status_for(command.error().code));
  const auto rules = program_rules(apps, options);
  if (!rules) return fail(program, rules.error().message, exit_status_for(rules.error().code));
  if (command->show_help) {
    std::cout << usage_text(program, help_for(options, *rules));
    return 0;
  }
  if (command->show_version) {
    std::cout << program << (options.version.empty() ? "" : " " + options.version) << " (prefork " << version()
              << ")\n";
    return 0;
  }
  auto settings = effective_config(*command, *rules);
  if (!settings) return fail(program, settings.error().message, exit_status_for(settings.error().code));
  const app* application = find_app(apps, settings->app);  // the rules let only these names through
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

  // Socket activation (systemd LISTEN_FDS): the inherited sockets replace `bind`, for
  // this start and every reload.
  auto activated = detail::inherited_sockets();
  if (!activated) {
    log_fatal("bad socket activation environment", {{"error", activated.error().message()}});
    return 3;
  }
  std::vector<bind_address> activated_binds;
  for (const auto& socket : *activated) {
    bind_address inherited;
    inherited.type = bind_address::kind::inherited_fd;
    inherited.fd = socket.fd;
    activated_binds.push_back(inherited);
  }
  if (!activated_binds.empty()) settings->bind = activated_binds;

  // Sockets: inherited from an upgrading predecessor when it passed them, else opened.
  detail::upgrade_handover handover = detail::take_upgrade_handover();
  const bool successor = handover.ready_fd >= 0;
  detail::master_sockets sockets;
  for (const auto& where : settings->bind) {
    auto opened =
        detail::adopt_or_open(handover, to_string(where), where, settings->backlog, settings->socket_mode_bits);
    if (!opened) {
      std::string error = opened.error().message;
      if (where.type == bind_address::kind::unix_path)
        error += missing_directory_hint(where.path, "listen elsewhere with -b BIND or the config's \"bind\"");
      log_fatal("cannot listen", {{"bind", to_string(where)}, {"error", error}});
      close_all(sockets.listeners);
      return exit_status_for(opened.error().code);
    }
    sockets.listeners.push_back(std::move(*opened));
  }
  if (!settings->control.empty()) {
    bind_address control_address;
    control_address.path = settings->control;
    // The control socket gets the configured backlog too: a burst of admin scripts (or a
    // harness polling status) must wait in it, not be refused.
    auto control = detail::adopt_or_open(handover, "control", control_address, settings->backlog, 0600);
    if (!control) {
      const std::string error =
          control.error().message + missing_directory_hint(settings->control,
                                                           "choose another path with --control PATH or the config's "
                                                           "\"control\"");
      log_fatal("cannot open the control socket", {{"path", settings->control}, {"error", error}});
      close_all(sockets.listeners);
      return exit_status_for(control.error().code);
    }
    sockets.control = std::move(*control);
  }
  if (settings->metrics) {
    auto metrics = detail::adopt_or_open(handover, "metrics", *settings->metrics, 64, settings->socket_mode_bits);
    if (!metrics) {
      log_fatal("cannot open the metrics endpoint",
                {{"bind", to_string(*settings->metrics)}, {"error", metrics.error().message}});
      close_all(sockets.listeners);
      if (sockets.control) detail::close_listener(*sockets.control);
      return exit_status_for(metrics.error().code);
    }
    sockets.metrics = std::move(*metrics);
  }
  detail::close_unclaimed(handover);

  if (settings->pid_file && !write_pid_file(*settings->pid_file)) {
    close_all(sockets.listeners);
    if (sockets.control) detail::close_listener(*sockets.control);
    return 1;
  }

  auto notifier = std::make_shared<detail::systemd_notifier>(detail::systemd_notifier::from_environment());
  detail::master_hooks hooks;
  hooks.reread_config = [command = *command, rules = *rules, activated_binds,
                         serving = application->name]() -> prefork::result<config> {
    auto next = effective_config(command, rules);
    if (!next) return next;
    // The master keeps the app it started with: a file naming another would be ignored.
    if (next->app != serving)
      return failure{errc::config_invalid, "\"app\": a reload cannot change the app (serving \"" + serving +
                                               "\", the file says \"" + next->app + "\"): restart the program"};
    if (!activated_binds.empty()) next->bind = activated_binds;
    return next;
  };
  hooks.notify = [notifier](std::string_view state) {
    if (auto ec = notifier->notify(state)) log_warning("systemd notification failed", {{"error", ec.message()}});
  };
  hooks.watchdog_interval = notifier->enabled() ? notifier->watchdog_interval() : std::nullopt;
  hooks.on_handover = [notifier] { notifier->disable(); };
  hooks.on_first_ready = [&handover, notifier, successor] {
    // A successor of an upgrade tells systemd it is the service's main process now.
    if (successor) (void)notifier->notify("MAINPID=" + std::to_string(::getpid()));
    detail::announce_upgrade_ready(handover);
  };
  hooks.make_policy = options.dispatch;
  hooks.executable = executable_path();
  for (int i = 1; i < argc; ++i) hooks.arguments.emplace_back(argv[i]);

  const std::optional<std::string> pid_file = settings->pid_file;
  int status = 1;
  try {
    status = detail::run_master(std::make_shared<const config>(std::move(*settings)), *application, std::move(sockets),
                                std::move(hooks));
  } catch (const std::exception& e) {
    log_fatal("master failed", {{"error", e.what()}});
  }
  if (pid_file) remove_pid_file(*pid_file);
  return status;
}

}  // namespace prefork
