"""The conformance tool (apps/python/conformance/run.py): the Python adapter passes it, and
deliberately broken workers fail the case that targets what they break."""

import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import unittest

from .support import PYTHON_DIR

TOOL = os.path.join(PYTHON_DIR, "conformance", "run.py")

# What the broken workers share: the channel on fd 3, a frame encoder, heartbeats from the loop.
BROKEN_WORKER_BASE = """
import json, os, select, signal, socket, struct, sys, time
for sig in (signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2, signal.SIGTTIN, signal.SIGTTOU):
    signal.signal(sig, signal.SIG_IGN)
chan = socket.socket(fileno=int(os.environ["PREFORK_CHANNEL_FD"]))
chan.setblocking(False)
timeout = json.loads(os.environ["PREFORK_CONFIG"])["timeout"]
interval = min(max(timeout / 4.0, 0.05), 1.0)
outbox = []

def frame(kind, payload):
    return struct.pack("=BBHI", kind, 1, 0, len(payload)) + payload

def queue(kind, payload):
    outbox.append(frame(kind, payload))

def flush():
    while outbox:
        try:
            chan.send(outbox[0], socket.MSG_NOSIGNAL)
        except BlockingIOError:
            return
        outbox.pop(0)

def heartbeat():
    if not outbox:
        try:
            chan.send(frame(3, b'{"type":"heartbeat","open":0,"served":0}'), socket.MSG_NOSIGNAL)
        except BlockingIOError:
            pass
"""

# Queues its acknowledgement (without waiting for the channel to take it) and reads the
# connections at once: fine while the channel has room, a violation of 3.4 when it is full.
SERVES_BEFORE_ACK = BROKEN_WORKER_BASE + """
ready = {"type": "ready", "id": int(os.environ["PREFORK_WORKER_ID"]),
         "generation": int(os.environ["PREFORK_GENERATION"]), "pid": os.getpid()}
queue(3, json.dumps(ready).encode())
received, conns, next_beat = 0, [], 0.0
while True:
    flush()
    now = time.monotonic()
    if now >= next_beat:
        heartbeat()
        next_beat = now + interval
    readable, _, _ = select.select([chan], [chan] if outbox else [], [], max(0.0, next_beat - now))
    if chan not in readable:
        continue
    try:
        data, ancillary, _, _ = chan.recvmsg(65536, socket.CMSG_SPACE(32 * 4), socket.MSG_DONTWAIT)
    except BlockingIOError:
        continue
    if not data and not ancillary:
        sys.exit(0)
    fds = []
    for _, _, payload in ancillary:
        fds.extend(struct.unpack("%di" % (len(payload) // 4), payload[:len(payload) // 4 * 4]))
    received += len(fds)
    queue(2, struct.pack("=QQQ", received, 0, 0))
    flush()
    for fd in fds:  # the bug: whether or not the acknowledgement went out
        conn = socket.socket(fileno=fd)
        try:
            conn.recv(65536, socket.MSG_DONTWAIT)
        except BlockingIOError:
            pass
        conns.append(conn)
"""

# Heartbeats, but never ready.
NEVER_READY = BROKEN_WORKER_BASE + """
while True:
    heartbeat()
    time.sleep(interval)
"""


def run_tool(args, timeout):
    """(exit status, stdout) of the tool, run in a session of its own that is killed on every path."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [PYTHON_DIR, env.get("PYTHONPATH")]))
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    proc = subprocess.Popen([sys.executable, TOOL, *args], cwd=PYTHON_DIR, env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        raise AssertionError("the conformance tool ran over %d s:\n%s" % (timeout, out.decode("utf-8", "replace")))
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return proc.returncode, out.decode("utf-8", "replace")


def case_lines(out):
    """{case name: its result} from the tool's output."""
    results = {}
    for line in out.splitlines():
        parts = line.split(None, 1)
        if len(parts) == 2 and (parts[1] == "ok" or parts[1].startswith(("ok (", "FAIL: ", "skipped"))):
            results[parts[0]] = parts[1]
    return results


class ConformanceTest(unittest.TestCase):
    def broken_worker(self, source):
        handle, path = tempfile.mkstemp(prefix="broken_worker_", suffix=".py")
        with os.fdopen(handle, "w") as script:
            script.write(textwrap.dedent(source))
        self.addCleanup(os.unlink, path)
        return [sys.executable, path]

    def test_the_python_adapter_conforms(self):
        status, out = run_tool(["--http", "--", sys.executable, "-m", "prefork_wsgi", "tests.wsgi_apps:app"], 150)
        self.assertEqual(status, 0, out)
        lines = out.splitlines()
        self.assertRegex(lines[-1], r"^\d+ passed, 0 failed$", out)
        results = case_lines(out)
        self.assertGreaterEqual(len(results), 20, out)
        self.assertTrue(all(result.startswith("ok") for result in results.values()), out)
        self.assertEqual(results["ack-full-channel"], "ok", out)  # the channel did fill: the check ran
        self.assertEqual(int(lines[-1].split()[0]), len(results))

    def test_a_worker_that_serves_before_its_acknowledgement_went_out_fails(self):
        command = self.broken_worker(SERVES_BEFORE_ACK)
        status, out = run_tool(["--case", "ready-first", "--case", "ack-before-read", "--case", "ack-full-channel",
                                "--", *command], 60)
        self.assertEqual(status, 1, out)
        results = case_lines(out)
        self.assertEqual(results["ready-first"], "ok", out)
        self.assertEqual(results["ack-before-read"], "ok", out)  # while the channel has room, it acknowledges first
        self.assertRegex(results["ack-full-channel"], r"^FAIL: it read from connection #\d+ while its "
                                                      r"acknowledgement could not be sent", out)
        self.assertEqual(out.splitlines()[-1], "2 passed, 1 failed")

    def test_a_worker_that_never_sends_ready_fails(self):
        command = self.broken_worker(NEVER_READY)
        status, out = run_tool(["--timeout", "1", "--case", "ready-first", "--case", "heartbeats", "--", *command], 60)
        self.assertEqual(status, 1, out)
        results = case_lines(out)
        self.assertRegex(results["ready-first"], r"^FAIL: protocol violation: the first frame is control "
                                                 r"'heartbeat', not ready", out)
        self.assertTrue(results["heartbeats"].startswith("FAIL: "), out)
        self.assertEqual(out.splitlines()[-1], "0 passed, 2 failed")

    def test_usage_errors(self):
        status, out = run_tool([], 30)
        self.assertEqual(status, 2, out)
        status, out = run_tool(["--", "/nonexistent/worker"], 30)
        self.assertEqual(status, 2, out)
        self.assertIn("cannot execute", out)


if __name__ == "__main__":
    unittest.main()
