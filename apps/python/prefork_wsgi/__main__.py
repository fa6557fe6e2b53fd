"""python3 -m prefork_wsgi [--chdir DIR] MODULE:CALLABLE

Started by preforkd (`--exec "python3 -m prefork_wsgi myapp:app"`, or `"exec"` in its
config file), which passes the channel on PREFORK_CHANNEL_FD (3) and the rest in the
environment: PREFORK_PROTOCOL (1), PREFORK_WORKER_ID, PREFORK_GENERATION, PREFORK_CONFIG.
Exit status: 0 stopped, 1 the app or the channel could not be set up, 2 usage error or
not started by preforkd (or by a master speaking another protocol version).
"""

import argparse
import json
import logging
import os
import signal
import socket
import sys

from . import PROTOCOL_VERSION, logfmt, wsgi
from .worker import Config, Worker

log = logging.getLogger("prefork_wsgi")


def _environment():
    env = os.environ
    protocol = env.get("PREFORK_PROTOCOL")
    if protocol is None:
        raise ValueError("PREFORK_PROTOCOL is not set: run this under preforkd "
                         "(preforkd --exec \"python3 -m prefork_wsgi MODULE:CALLABLE\")")
    if protocol != str(PROTOCOL_VERSION):
        raise ValueError("PREFORK_PROTOCOL is %r; this adapter speaks version %d" % (protocol, PROTOCOL_VERSION))
    try:
        fd = int(env.get("PREFORK_CHANNEL_FD", "3"))
        worker_id = int(env.get("PREFORK_WORKER_ID", "0"))
        generation = int(env.get("PREFORK_GENERATION", "0"))
    except ValueError as error:
        raise ValueError("bad PREFORK_* variable: %s" % error) from None
    try:
        settings = json.loads(env.get("PREFORK_CONFIG", "{}"))
    except ValueError as error:
        raise ValueError("PREFORK_CONFIG is not JSON: %s" % error) from None
    if not isinstance(settings, dict):
        raise ValueError("PREFORK_CONFIG is not a JSON object")
    return fd, worker_id, generation, settings


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python3 -m prefork_wsgi",
                                     description="Serve a WSGI app as a preforkd worker (stdlib only).")
    parser.add_argument("app", metavar="MODULE:CALLABLE",
                        help="the WSGI callable, e.g. myapp:app (MODULE alone: `application`, else `app`)")
    parser.add_argument("--chdir", metavar="DIR", help="change to DIR (and import from it) before loading the app")
    args = parser.parse_args(argv)

    try:
        fd, worker_id, generation, settings = _environment()
        config = Config(settings)
    except (ValueError, TypeError) as error:
        print("prefork_wsgi: %s" % error, file=sys.stderr)
        return 2
    handler = logfmt.setup(config.log, worker_id)

    try:
        chan = socket.socket(fileno=fd)
        if chan.type != socket.SOCK_SEQPACKET:
            raise OSError("descriptor %d is not a SOCK_SEQPACKET socket" % fd)
    except OSError as error:
        log.critical("no channel to the master", extra={"fields": {"fd": fd, "error": str(error)}})
        return 1

    # The master's own signals must not stop or kill a worker that is still loading its
    # app (PROTOCOL.md 5, 7.3): ignore them before the import, as the loop does later.
    for sig in (signal.SIGHUP, signal.SIGTTIN, signal.SIGTTOU, signal.SIGUSR1, signal.SIGUSR2):
        signal.signal(sig, signal.SIG_IGN)
    if args.chdir:
        os.chdir(args.chdir)
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        app = wsgi.load_app(args.app)
    except Exception as error:
        log.critical("cannot load the application", exc_info=True,
                     extra={"fields": {"app": args.app, "error": str(error)}})
        return 1
    log.debug("serving", extra={"fields": {"app": args.app, "generation": generation}})
    Worker(chan, app, config, worker_id, generation, handler).run()
    return 0  # not reached: the worker ends the process


if __name__ == "__main__":
    sys.exit(main())
