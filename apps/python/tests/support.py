"""Test helpers: a fake master that runs `python3 -m prefork_wsgi` as a subprocess over a
real SOCK_SEQPACKET socketpair, and a small HTTP client. Every wait is bounded; the worker
runs in its own session (process group) and is SIGKILLed in every path."""

import json
import os
import select
import signal
import socket
import subprocess
import sys
import tempfile
import time

from prefork_wsgi import channel

PYTHON_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # apps/python
WAIT = 5.0  # the longest any single wait may take
# The first frame waits for Python to start and import the app (Flask takes seconds on a
# machine whose cores are busy with compilers): a bound, returned from as soon as it comes.
LOAD_WAIT = 60.0


class Master:
    """Plays the master's side of one worker's channel."""

    def __init__(self, test, config=None, app="tests.wsgi_apps:app", worker_id=7, generation=2, args=(),
                 env=None):
        self.test = test
        self.worker_id = worker_id
        self.generation = generation
        self.sock, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        settings = {"timeout": 2, "graceful_timeout": 5, "keepalive": 5,
                    "http": {"max_header_bytes": 8192, "max_body_bytes": 1048576, "request_timeout": 5},
                    "log": {"level": "debug", "file": "-", "format": "text"}}
        for key, value in (config or {}).items():
            if isinstance(value, dict):
                settings[key] = dict(settings.get(key, {}), **value)
            else:
                settings[key] = value
        environment = dict(os.environ)
        environment["PYTHONPATH"] = os.pathsep.join(filter(None, [PYTHON_DIR, environment.get("PYTHONPATH")]))
        environment.update(PREFORK_PROTOCOL="1", PREFORK_CHANNEL_FD=str(child.fileno()),
                           PREFORK_WORKER_ID=str(worker_id), PREFORK_GENERATION=str(generation),
                           PREFORK_CONFIG=json.dumps(settings))
        environment.update(env or {})
        self.stderr = tempfile.TemporaryFile()
        self.proc = subprocess.Popen([sys.executable, "-m", "prefork_wsgi", *args, app], env=environment,
                                     pass_fds=[child.fileno()], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=self.stderr, cwd=PYTHON_DIR,
                                     start_new_session=True)
        child.close()
        test.addCleanup(self.kill)
        self.sent = []  # our copies of handed-off descriptors, until acknowledged
        self.acknowledged = 0
        self.progress = (0, 0, 0)
        self.heartbeats = []
        self.clients = []

    # --- process -------------------------------------------------------------------------

    def kill(self):
        # The worker leads its own process group; once it is reaped, its pid may be reused.
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            self.proc.wait(WAIT)
        except subprocess.TimeoutExpired:
            pass
        for fd in self.sent:
            os.close(fd)
        self.sent = []
        for client in self.clients:
            client.close()
        self.sock.close()
        self.stderr.close()

    def signal(self, sig):
        self.proc.send_signal(sig)

    def wait_exit(self, timeout=WAIT):
        return self.proc.wait(timeout)

    def log(self):
        self.stderr.seek(0)
        return self.stderr.read().decode("utf-8", "replace")

    # --- frames --------------------------------------------------------------------------

    def recv(self, timeout=WAIT):
        """The next frame of any kind (heartbeats included); AssertionError after timeout."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError("no frame from the worker within %.1f s; its log:\n%s" % (timeout, self.log()))
            ready, _, _ = select.select([self.sock], [], [], remaining)
            if not ready:
                continue
            frame = channel.recv_frame(self.sock)
            self._note(frame)
            return frame

    def recv_now(self):
        """A frame already in the channel, or None."""
        try:
            frame = channel.recv_frame(self.sock)
        except BlockingIOError:
            return None
        self._note(frame)
        return frame

    def read_to_eof(self, timeout=WAIT):
        """Every frame up to the worker's end of the channel closing (it exited)."""
        frames = []
        while True:
            try:
                frames.append(self.recv(timeout))
            except channel.ChannelClosed:
                return frames

    def _note(self, frame):
        if frame.type == channel.PROGRESS:
            self.progress = channel.decode_progress(frame.payload)
            # As the master: our copies are closed once acknowledged.
            newly = self.progress[0] - self.acknowledged
            for fd in self.sent[:newly]:
                os.close(fd)
            del self.sent[:newly]
            self.acknowledged = max(self.acknowledged, self.progress[0])
        elif frame.type == channel.CONTROL:
            message = channel.decode_control(frame.payload)
            if message["type"] == "heartbeat":
                self.heartbeats.append((time.monotonic(), message))

    def expect(self, predicate, what, timeout=WAIT, skip_heartbeats=True):
        """Frames until one satisfies `predicate`; the ones skipped are returned too."""
        deadline = time.monotonic() + timeout
        skipped = []
        while True:
            frame = self.recv(max(0.01, deadline - time.monotonic()))
            if predicate(frame):
                return frame, skipped
            if not (skip_heartbeats and is_control(frame, "heartbeat")):
                skipped.append(frame)
            if time.monotonic() > deadline:
                raise AssertionError("no %s from the worker; got %r" % (what, skipped))

    def expect_control(self, kind, timeout=WAIT):
        frame, skipped = self.expect(lambda f: is_control(f, kind), kind, timeout)
        return channel.decode_control(frame.payload), skipped

    def expect_progress(self, received=None, closed=None, requests=None, timeout=WAIT):
        def matches(frame):
            if frame.type != channel.PROGRESS:
                return False
            r, c, q = channel.decode_progress(frame.payload)
            return (received is None or r == received) and (closed is None or c == closed) and \
                (requests is None or q == requests)

        frame, skipped = self.expect(matches, "progress %s/%s/%s" % (received, closed, requests), timeout)
        return channel.decode_progress(frame.payload), skipped

    def ready(self, timeout=LOAD_WAIT):
        message, skipped = self.expect_control("ready", timeout)
        self.test.assertEqual(skipped, [])  # ready is the first frame
        return message

    def handoff(self, fds, indices=None):
        fds = list(fds)
        indices = list(indices) if indices is not None else [0] * len(fds)
        channel.send_frame(self.sock, channel.HANDOFF, channel.encode_indices(indices), fds)
        # The master keeps its copy until the worker acknowledges.
        self.sent.extend(os.dup(fd) for fd in fds)

    def send_control(self, kind):
        channel.send_frame(self.sock, channel.CONTROL, channel.encode_control(kind))

    def handed_off(self):
        return self.acknowledged + len(self.sent)

    def connect(self, index=0, data=b"", wait_ack=True):
        """A client connection (a Unix stream socketpair) whose server end is handed off;
        `data` is written by the client before the handoff. With `wait_ack`, returns once
        the worker acknowledged it (and our copy is closed, as the master closes its own:
        until then the client cannot see the worker's close)."""
        client, server = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        server.setblocking(False)
        if data:
            client.sendall(data)
        self.handoff([server.fileno()], [index])
        server.close()
        http = Client(client)
        self.clients.append(http)
        if wait_ack:
            self.wait_acknowledged()
        return http

    def wait_acknowledged(self, timeout=WAIT):
        """Reads frames until every descriptor sent is acknowledged; returns the frames
        other than heartbeats and progress read meanwhile."""
        deadline = time.monotonic() + timeout
        others = []
        while self.sent:
            frame = self.recv(max(0.01, deadline - time.monotonic()))
            if frame.type != channel.PROGRESS and not is_control(frame, "heartbeat"):
                others.append(frame)
        return others


def read_until_closed(sock, timeout=WAIT):
    """Everything `sock` receives until the peer closes; socket.timeout after `timeout`."""
    sock.settimeout(timeout)
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk


def is_control(frame, kind):
    return frame.type == channel.CONTROL and channel.decode_control(frame.payload)["type"] == kind


class Response:
    def __init__(self, status, reason, headers, body, raw):
        self.status = status
        self.reason = reason
        self.headers = headers  # {lower name: value}
        self.body = body
        self.raw = raw

    def header(self, name):
        return self.headers.get(name.lower())

    def __repr__(self):
        return "Response(%d, %r, %r)" % (self.status, self.headers, self.body)


class Client:
    """A blocking HTTP/1.1 client on one socket, every read bounded by WAIT."""

    def __init__(self, sock):
        self.sock = sock
        self.sock.settimeout(WAIT)
        self.buffer = b""

    def close(self):
        self.sock.close()

    def send(self, data):
        self.sock.sendall(data)

    def _fill(self):
        data = self.sock.recv(65536)
        if not data:
            raise EOFError("connection closed by the worker")
        self.buffer += data

    def _until(self, marker):
        while marker not in self.buffer:
            self._fill()
        index = self.buffer.index(marker) + len(marker)
        taken, self.buffer = self.buffer[:index], self.buffer[index:]
        return taken

    def _exactly(self, n):
        while len(self.buffer) < n:
            self._fill()
        taken, self.buffer = self.buffer[:n], self.buffer[n:]
        return taken

    def response(self, head_request=False):
        head = self._until(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        version, status, reason = (lines[0].split(" ", 2) + [""])[:3]
        assert version == "HTTP/1.1", lines[0]
        headers = {}
        for line in lines[1:]:
            if line:
                name, value = line.split(":", 1)
                headers[name.strip().lower()] = value.strip()
        status = int(status)
        raw = head
        body = b""
        if head_request or status < 200 or status in (204, 304):
            pass
        elif "content-length" in headers:
            body = self._exactly(int(headers["content-length"]))
            raw += body
        elif headers.get("transfer-encoding") == "chunked":
            while True:
                size_line = self._until(b"\r\n")
                raw += size_line
                size = int(size_line.split(b";")[0], 16)
                data = self._exactly(size + 2)
                raw += data
                if size == 0:
                    break
                body += data[:-2]
        else:
            while True:
                try:
                    self._fill()
                except EOFError:
                    break
            body, self.buffer = self.buffer, b""
            raw += body
        return Response(status, reason, headers, body, raw)

    def request(self, method="GET", path="/", headers=(), body=b"", version="HTTP/1.1"):
        lines = ["%s %s %s" % (method, path, version), "Host: test"]
        lines += ["%s: %s" % pair for pair in headers]
        if body:
            lines.append("Content-Length: %d" % len(body))
        self.send(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        return self.response(head_request=method == "HEAD")

    def at_eof(self, timeout=WAIT):
        """True when the worker closed the connection (after whatever is still buffered)."""
        self.sock.settimeout(timeout)
        try:
            while True:
                data = self.sock.recv(65536)
                if not data:
                    return True
                self.buffer += data
        except (socket.timeout, BlockingIOError):
            return False
        except ConnectionResetError:
            return True
        finally:
            self.sock.settimeout(WAIT)
