// preforkctl (SPEC section 3): the command-line client of the master's control socket.
// The program's main() only forwards to run_preforkctl, so that tests run it in-process.
#pragma once

#include <iosfwd>

namespace prefork {

/// Runs `preforkctl [-s SOCKET | -c FILE] [--json] COMMAND [ARGS]` and returns its exit status:
/// 0 done; 1 the master answered with an error (printed as `preforkctl: CODE: MESSAGE`),
/// or `wait-ready` timed out; 2 usage error (or -c FILE is not a valid configuration);
/// 3 cannot reach the master (no socket, refused, no permission, `forbidden`, no reply in
/// time). Results go to `out` (for people, or with --json the result as one JSON line),
/// messages to `err`. The socket is -s SOCKET, else the `control` key of -c FILE, else
/// $PREFORK_CONTROL, else run/preforkd.ctl, relative to the working directory.
/// Global options may also follow the command. Blocks for at most the command's deadline
/// (10 s; `reload --wait` 300 s; `wait-ready` its --timeout, default 30 s).
int run_preforkctl(int argc, const char* const* argv, std::ostream& out, std::ostream& err);

}  // namespace prefork
