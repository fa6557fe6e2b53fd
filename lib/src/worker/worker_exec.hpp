// A worker in any language: after the master's fork steps, the child puts its channel on
// descriptor 3 and execs the configured command, which then speaks the channel protocol
// (lib/PROTOCOL.md) exactly as the C++ worker runtime does.
#pragma once

#include "worker/worker_runtime.hpp"

#include <string>
#include <vector>

namespace prefork::detail {

/// The descriptor an exec'd worker finds its channel on (PREFORK_CHANNEL_FD).
inline constexpr int exec_channel_fd = 3;

/// The `exec` command as one line for logs ("python3 -m prefork_wsgi app:app"); empty
/// when the workers serve an app instead.
std::string exec_command_text(const config& settings);

/// The environment of an exec'd worker: `inherited` (KEY=VALUE entries) without what is
/// not the worker's business (systemd's NOTIFY_SOCKET, LISTEN_*, WATCHDOG_*; older
/// PREFORK_* values), plus PREFORK_PROTOCOL, PREFORK_CHANNEL_FD, PREFORK_WORKER_ID,
/// PREFORK_GENERATION and PREFORK_CONFIG (the effective configuration as JSON).
std::vector<std::string> exec_environment(const char* const* inherited, const worker_launch& launch);

/// Execs `launch.settings->exec` in this (forked) process: the log destination becomes
/// stderr, the channel descriptor 3 (blocking, kept across exec), every other descriptor
/// but stdin/stdout is closed, signals are unblocked and set to their defaults. When the
/// command cannot be executed it logs why and exits 127.
[[noreturn]] void exec_worker(const worker_launch& launch);

}  // namespace prefork::detail
