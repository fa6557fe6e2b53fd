#!/usr/bin/env python3
"""Conformance test for prefork workers: the worker's side of lib/PROTOCOL.md, version 1.

    python3 apps/python/conformance/run.py [--http] [--timeout S] [--case NAME]... [-v] -- COMMAND [ARGS...]

It plays the master for COMMAND as preforkd starts an exec'd worker (section 7.2): a
socketpair(AF_UNIX, SOCK_SEQPACKET) whose worker end becomes descriptor 3 (blocking,
inheritable), every other descriptor above 2 closed, every signal at its default disposition
and unblocked, PR_SET_PDEATHSIG SIGKILL, stdin /dev/null, stdout and stderr a log file, and
the master's environment (minus NOTIFY_SOCKET, LISTEN_*, WATCHDOG_*) plus PREFORK_PROTOCOL,
PREFORK_CHANNEL_FD, PREFORK_WORKER_ID, PREFORK_GENERATION and PREFORK_CONFIG (the effective
configuration as `preforkd --check-config` prints it). Each worker leads a process group of
its own, which is SIGKILLed on every path; every wait is bounded.

Then it checks the rules a worker MUST follow, one case at a time, each against a fresh
worker process, and prints one line per case (`NAME  ok` or `NAME  FAIL: why`) and last
`N passed, M failed`. Exit status: 0 when every case passed, 1 when one failed, 2 for a usage
error. Some rules are checked on every frame of every case: ready is the first frame; every
frame is well formed (section 3.2) and no handoff comes from the worker; progress counters
never decrease, closed <= received <= descriptors handed off, and `closed` never counts a
connection that is still open; no handed-off connection is read or written before its
acknowledgement is in the channel; a handback carries only connections the worker holds,
with their listener_index, O_NONBLOCK still set.

Connections are Unix stream socketpairs: the client end stays here, the server end is handed
off, and this program keeps its copy (as the master does) until the worker acknowledges it,
which is what lets it see (FIONREAD on that copy) whether the worker read before
acknowledging. With --http, the cases that need an application-level exchange send
`GET / HTTP/1.1` and accept any complete HTTP/1.1 response; without it, the cases stay at the
protocol level and a connection's client only ever sends "\\r\\n" or nothing.

The frame codec is this file's own (stdlib only, Python 3.9+): the tool does not trust the
implementation it tests.
"""

import argparse
import array
import ctypes
import fcntl
import json
import os
import re
import select
import shutil
import signal
import socket
import struct
import sys
import tempfile
import termios
import time
import traceback

# --- the wire format (section 3) --------------------------------------------------------

PROTOCOL = 1
HANDOFF, PROGRESS, CONTROL, HANDBACK = 1, 2, 3, 4
TYPE_NAMES = {HANDOFF: "handoff", PROGRESS: "progress", CONTROL: "control", HANDBACK: "handback"}
HEADER = struct.Struct("=BBHI")  # type, version, reserved, payload_size; native order
COUNTERS = struct.Struct("=QQQ")  # received, closed, requests
INDEX = struct.Struct("=I")  # listener_index
MAX_MESSAGE = 65536
MAX_FDS = 32
UINT64_MAX = 2 ** 64 - 1
WORKER_MESSAGES = {"ready": ("id", "generation", "pid"), "heartbeat": ("open", "served"), "draining": ()}
MASTER_MESSAGES = {"reopen_logs": (), "drain": ()}  # from a worker: ignored by the master

HTTP_REQUEST = b"GET / HTTP/1.1\r\nHost: conformance\r\n\r\n"
NEUTRAL_BYTES = b"\r\n"  # what a client sends without --http: something to read, nothing to answer

POLL_IN = select.POLLIN | select.POLLPRI
POLL_GONE = select.POLLHUP | select.POLLRDHUP | select.POLLERR
PR_SET_PDEATHSIG = 1


def frame(frame_type, payload=b"", version=PROTOCOL, reserved=0, size=None):
    """One message: the header and the payload (any values: some cases send bad ones)."""
    return HEADER.pack(frame_type, version, reserved, len(payload) if size is None else size) + payload


def control(message):
    return frame(CONTROL, json.dumps(message, separators=(",", ":")).encode())


def clamp(value, low, high):
    return min(max(value, low), high)


def seconds_json(value):
    """Seconds as `preforkd --check-config` writes them: an integer when whole, else ms."""
    ms = int(round(value * 1000))
    return ms // 1000 if ms % 1000 == 0 else ms / 1000.0


def fionread(fd):
    """Bytes waiting to be read on a descriptor (for SEQPACKET: in every queued message)."""
    count = array.array("i", [0])
    fcntl.ioctl(fd, termios.FIONREAD, count)
    return count[0]


def poll_events(fd):
    poller = select.poll()
    poller.register(fd, POLL_IN | POLL_GONE)
    events = poller.poll(0)
    return events[0][1] if events else 0


def signal_name(number):
    try:
        return signal.Signals(number).name
    except ValueError:
        return "signal %d" % number


def describe_status(status):
    return "status %d" % status if status >= 0 else "killed by %s" % signal_name(-status)


class Failure(Exception):
    """The case failed; the message says why."""


class Skip(Exception):
    """The case could not be checked (its line says so; it counts as passed)."""


# --- connections ------------------------------------------------------------------------

class Conn:
    """One client connection: the client's end stays here, the server end is handed off.
    Until the worker acknowledges it, `copy` is the master's copy of the server end."""

    def __init__(self, number, index, data=b"", kind="socket"):
        self.number = number
        self.index = index
        self.data = data
        self.kind = kind
        self.client = None  # the client's socket (kind "socket")
        self.pipe_write = None  # the write end (kind "pipe": a descriptor that is not a socket)
        if kind == "socket":
            client, server = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
            server.setblocking(False)  # accepted with SOCK_NONBLOCK (3.3)
            if data:
                client.sendall(data)
            client.setblocking(False)
            self.client = client
            self.copy = server.detach()
        else:
            self.copy, self.pipe_write = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        self.inode = os.fstat(self.copy).st_ino
        self.acked = False
        self.handed_back = None  # our descriptor, once the worker handed it back
        self.client_closed = False
        self.rbuf = bytearray()
        self.eof = False
        self.reset = False
        self.responses = 0
        self.sent_after = 0  # bytes the client sent after the handoff

    def name(self):
        return "connection #%d" % self.number

    def acknowledge(self):
        self.acked = True
        os.close(self.copy)
        self.copy = None

    def touched(self):
        """What the worker did to a connection it has not acknowledged, or None."""
        if self.kind != "socket" or self.copy is None:
            return None
        if fionread(self.copy) < len(self.data):
            return "read from"
        events = poll_events(self.client.fileno())
        if events & POLL_IN:
            return "wrote to"
        if events & POLL_GONE:
            return "shut down"
        return None

    def may_be_closed(self):
        """True unless the connection is certainly still open in the worker."""
        if self.client_closed or self.handed_back is not None:
            return True
        if not self.acked:
            return False  # our copy keeps it open: the test below would say nothing
        if self.kind == "pipe":
            return bool(poll_events(self.pipe_write) & select.POLLERR)
        return bool(poll_events(self.client.fileno()) & select.POLLHUP)

    def read_available(self):
        while not self.eof:
            try:
                data = self.client.recv(65536)
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionResetError:
                self.eof = self.reset = True
                return
            if not data:
                self.eof = True
                return
            self.rbuf += data

    def send(self, data):
        self.client.setblocking(True)
        self.client.settimeout(5)
        try:
            self.client.sendall(data)
        except OSError as error:
            raise Failure("%s: the client cannot send (%s)" % (self.name(), error)) from None
        finally:
            self.client.setblocking(False)
        self.sent_after += len(data)

    def close_client(self):
        if self.client is not None and not self.client_closed:
            self.client.close()
        if self.pipe_write is not None and not self.client_closed:
            os.close(self.pipe_write)
        self.client_closed = True

    def release(self):
        if self.copy is not None:
            os.close(self.copy)
            self.copy = None
        if self.handed_back is not None:
            os.close(self.handed_back)
            self.handed_back = -1
        self.close_client()


def parse_response(buf, eof):
    """(status, headers, bytes used) of the first complete HTTP/1.1 response in buf, or None."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        if len(buf) > 65536:
            raise Failure("a response head over 64 KiB")
        return None
    lines = bytes(buf[:end]).decode("latin-1").split("\r\n")
    if not re.match(r"^HTTP/1\.1 [1-5]\d\d( |$)", lines[0]):
        raise Failure("not an HTTP/1.1 status line: %r" % lines[0][:80])
    status = int(lines[0][9:12])
    headers = []
    for line in lines[1:]:
        if ":" not in line:
            raise Failure("a malformed response header line: %r" % line[:80])
        name, value = line.split(":", 1)
        headers.append((name.strip().lower(), value.strip()))
    fields = dict(headers)
    pos = end + 4
    if status < 200 or status in (204, 304):
        return status, headers, pos
    if "chunked" in fields.get("transfer-encoding", "").lower():
        while True:
            line_end = buf.find(b"\r\n", pos)
            if line_end < 0:
                return None
            try:
                size = int(bytes(buf[pos:line_end]).split(b";")[0].strip(), 16)
            except ValueError:
                raise Failure("a malformed chunk size line: %r" % bytes(buf[pos:line_end])[:40]) from None
            pos = line_end + 2
            if size == 0:
                while True:  # trailers, up to the empty line
                    line_end = buf.find(b"\r\n", pos)
                    if line_end < 0:
                        return None
                    empty = line_end == pos
                    pos = line_end + 2
                    if empty:
                        return status, headers, pos
            if len(buf) < pos + size + 2:
                return None
            pos += size + 2
    if "content-length" in fields:
        try:
            length = int(fields["content-length"])
        except ValueError:
            raise Failure("a malformed Content-Length: %r" % fields["content-length"]) from None
        return (status, headers, pos + length) if len(buf) >= pos + length else None
    return (status, headers, len(buf)) if eof else None  # the body ends with the close


def says_close(headers):
    return any(name == "connection" and "close" in [t.strip().lower() for t in value.split(",")]
               for name, value in headers)


# --- the master's side of one worker ----------------------------------------------------

class Session:
    """One worker process and its channel, played as the master plays them."""

    def __init__(self, tool, config=None, generation=1, protocol="1", sndbuf=None, log_path=None):
        self.tool = tool
        self.worker_id = tool.next_worker_id()
        self.generation = generation
        self.settings = tool.config(config)
        self.pid = None
        self.chan = None
        self.reaped = False
        self.exit_status = None
        self.exit_at = None
        self.log_path = log_path
        self.log = open(log_path, "ab") if log_path else tempfile.TemporaryFile()
        self.eof = False
        self.channel_closed = False
        self.seq = 0
        self.frames = []  # (seq, kind, value, at) of every frame received
        self.ready = None
        self.ready_at = None
        self.heartbeats = []  # (at, message)
        self.drainings = []  # seq of each `draining`
        self.progress = None  # the last (received, closed, requests)
        self.progress_seqs = []
        self.handback_seqs = []
        self.sent = 0  # descriptors handed off in well-formed handoff frames
        self.pending = []  # handed off, not acknowledged yet (in order)
        self.conns = []
        self.by_inode = {}
        self.strays = []  # descriptors of the malformed frames we send (their far ends)
        self.protocol = protocol
        self.sndbuf = sndbuf

    def start(self):
        self._spawn(self.protocol, self.sndbuf)
        return self

    # --- the process ------------------------------------------------------------------------

    def _spawn(self, protocol, sndbuf):
        tool = self.tool
        self.chan, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)  # both close-on-exec
        self.chan.setblocking(False)
        if sndbuf:
            child.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
        self.child_inode = os.fstat(child.fileno()).st_ino
        env = {k: v for k, v in os.environ.items()
               if k != "NOTIFY_SOCKET" and not k.startswith(("LISTEN_", "WATCHDOG_", "PREFORK_"))}
        env.update(PREFORK_PROTOCOL=protocol, PREFORK_CHANNEL_FD="3", PREFORK_WORKER_ID=str(self.worker_id),
                   PREFORK_GENERATION=str(self.generation),
                   PREFORK_CONFIG=json.dumps(self.settings, separators=(",", ":")))
        argv = tool.command
        devnull = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        log_fd = self.log.fileno()
        child_fd = child.fileno()
        parent = os.getpid()
        top = max(int(name) for name in os.listdir("/proc/self/fd")) + 1
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # the child: what worker_exec does, then execvp
            try:
                os.setpgid(0, 0)
                if tool.prctl is not None:
                    tool.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
                if os.getppid() != parent:
                    os._exit(1)
                os.dup2(devnull, 0)
                os.dup2(log_fd, 1)
                os.dup2(log_fd, 2)
                if child_fd != 3:
                    os.dup2(child_fd, 3)
                os.set_inheritable(3, True)
                os.set_blocking(3, True)
                os.closerange(4, max(top, 5))
                for sig in signal.valid_signals():
                    if sig not in (signal.SIGKILL, signal.SIGSTOP):
                        try:
                            signal.signal(sig, signal.SIG_DFL)
                        except (OSError, ValueError, RuntimeError):
                            pass
                signal.pthread_sigmask(signal.SIG_SETMASK, [])
                os.execvpe(argv[0], argv, env)
            except BaseException as error:
                try:
                    os.write(2, ("conformance: cannot exec the worker command %s: %s\n" % (argv, error)).encode())
                except BaseException:
                    pass
            finally:
                os._exit(127)
        self.pid = pid
        try:
            os.setpgid(pid, pid)  # both sides: killpg works from here on
        except OSError:
            pass  # it already did (and exec'd)
        os.close(devnull)
        child.close()

    def status(self):
        """The exit status (-N for signal N) once the worker ended, else None. The worker
        stays a zombie until close(): its pid and process group cannot be reused before."""
        if self.exit_status is not None:
            return self.exit_status
        try:
            info = os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return None
        if info is None or info.si_pid == 0:
            return None
        self.exit_status = info.si_status if info.si_code == os.CLD_EXITED else -info.si_status
        self.exit_at = time.monotonic()
        return self.exit_status

    def exit_note(self):
        status = self.status()
        return "" if status is None else " (the worker exited: %s)" % describe_status(status)

    def state(self):
        """The process state letter from /proc/PID/stat (R, S, T, Z, ...)."""
        try:
            with open("/proc/%d/stat" % self.pid) as stat:
                return stat.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            return "?"

    def signal(self, sig):
        if self.status() is None:
            os.kill(self.pid, sig)

    def wait_exit(self, timeout, what):
        deadline = time.monotonic() + timeout
        while self.status() is None:
            if time.monotonic() >= deadline:
                raise Failure(what)
            self.pump(0.005)
        return self.exit_status

    def close(self):
        if self.pid is not None and not self.reaped:
            try:
                os.killpg(self.pid, signal.SIGKILL)
            except OSError:
                try:
                    os.kill(self.pid, signal.SIGKILL)
                except OSError:
                    pass
            deadline = time.monotonic() + 5
            while True:
                try:
                    done, _ = os.waitpid(self.pid, os.WNOHANG)
                except ChildProcessError:
                    break
                if done or time.monotonic() > deadline:
                    break
                time.sleep(0.005)
            self.reaped = True
        if self.chan is not None and not self.channel_closed:
            self.chan.close()
            self.channel_closed = True
        for conn in self.conns:
            conn.release()
        for fd in self.strays:
            try:
                os.close(fd)
            except OSError:
                pass
        self.strays = []
        self.log.close()

    def log_tail(self, lines=20):
        try:
            if self.log_path:
                with open(self.log_path, "rb") as log:
                    text = log.read()
            else:
                self.log.seek(0)
                text = self.log.read()
        except (OSError, ValueError):
            return []
        return text.decode("utf-8", "replace").splitlines()[-lines:]

    def worker_fds(self):
        """{fd: link target} of the worker's descriptors."""
        base = "/proc/%d/fd" % self.pid
        try:
            names = os.listdir(base)
        except OSError as error:
            raise Failure("cannot list %s: %s" % (base, error)) from None
        fds = {}
        for name in names:
            try:
                fds[int(name)] = os.readlink(os.path.join(base, name))
            except OSError:
                pass
        return fds

    def fd_flags(self, fd):
        try:
            with open("/proc/%d/fdinfo/%d" % (self.pid, fd)) as info:
                for line in info:
                    if line.startswith("flags:"):
                        return int(line.split()[1], 8)
        except OSError:
            pass
        return None

    # --- sending --------------------------------------------------------------------------

    def send_message(self, data, fds=()):
        """One message, as the master sends (MSG_NOSIGNAL | MSG_DONTWAIT); a full channel is
        waited on (bounded), as the master queues."""
        ancillary = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds).tobytes())] if fds else []
        deadline = time.monotonic() + self.tool.wait
        while True:
            try:
                self.chan.sendmsg([data], ancillary, socket.MSG_NOSIGNAL | socket.MSG_DONTWAIT)
                return
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise Failure("the worker does not read its channel (it stayed full for %.1f s)" % self.tool.wait)
                self.pump(0.01)
            except OSError as error:
                raise Failure("cannot send to the worker: %s%s" % (error, self.exit_note())) from None

    def new_conn(self, data=b"", index=0, kind="socket"):
        conn = Conn(len(self.conns) + 1, index, data, kind)
        self.conns.append(conn)
        self.by_inode[conn.inode] = conn
        return conn

    def handoff(self, conns):
        """One handoff frame for these connections (1 to 32)."""
        self.send_message(frame(HANDOFF, b"".join(INDEX.pack(c.index) for c in conns)), [c.copy for c in conns])
        self.sent += len(conns)
        self.pending.extend(conns)

    def connect(self, data=b"", index=0):
        conn = self.new_conn(data, index)
        self.handoff([conn])
        return conn

    def send_control(self, message):
        self.send_message(control(message) if isinstance(message, dict) else message)

    def close_channel(self):
        """The master goes away."""
        self.chan.close()
        self.channel_closed = True
        self.eof = True

    # --- receiving ------------------------------------------------------------------------

    def pump(self, timeout, watch=()):
        """Waits up to `timeout` for the channel or a watched descriptor, then reads every
        frame waiting. A connection the worker touched before the wait ended must have its
        acknowledgement in what was read: the worker sends it before touching one."""
        poller = select.poll()
        if not self.eof:
            poller.register(self.chan.fileno(), select.POLLIN)
        for fd in watch:
            poller.register(fd, POLL_IN | POLL_GONE)
        for conn in self.pending:  # wake up as soon as the worker writes to one
            if conn.client is not None and conn.client.fileno() not in watch:
                poller.register(conn.client.fileno(), POLL_IN | POLL_GONE)
        if self.eof and not watch and not self.pending:
            time.sleep(max(0.0, timeout))
        else:
            poller.poll(max(0, int(timeout * 1000)))
        touched = self.touched_before_acknowledged([(conn, conn.touched()) for conn in self.pending])
        self.drain()
        for conn, what in touched:
            raise Failure("it %s %s before acknowledging it (3.4: acknowledge before touching; until then "
                          "the master may give it to another worker)" % (what, conn.name()))

    def touched_before_acknowledged(self, observations):
        """The (connection, what) of `observations` (just made) that no frame already in the
        channel acknowledges. Only the bytes queued now are read: an acknowledgement the worker
        sends after the observation (it may, once reading makes room) comes too late."""
        suspects = [(conn, what) for conn, what in observations if what]
        if suspects and not self.channel_closed:
            self.drain(fionread(self.chan.fileno()))
        return [(conn, what) for conn, what in suspects if not conn.acked]

    def drain(self, limit=None):
        """Reads every frame waiting, or frames up to `limit` bytes."""
        consumed = 0
        while not self.eof and (limit is None or consumed < limit):
            size = self._receive_one()
            if size is None:
                return
            consumed += size

    def _receive_one(self):
        try:
            data, ancillary, flags, _ = self.chan.recvmsg(
                MAX_MESSAGE, socket.CMSG_SPACE(MAX_FDS * INDEX.size), socket.MSG_CMSG_CLOEXEC | socket.MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError):
            return None
        except ConnectionResetError:
            self.eof = True
            return None
        at = time.monotonic()
        fds = []
        for level, kind, payload in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                got = array.array("i")
                got.frombytes(payload[:len(payload) - len(payload) % got.itemsize])
                fds.extend(got)
        taken = []
        try:
            if not data and not fds and not flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC):
                if poll_events(self.chan.fileno()) & (select.POLLHUP | select.POLLRDHUP):
                    self.eof = True
                    return None
                self._violation("a 0-byte message (3.2: shorter than the header)")
            self.seq += 1
            self._check(data, flags, fds, at, taken)
        finally:
            for fd in fds:
                if fd not in taken:
                    os.close(fd)
        return len(data)

    def _violation(self, what):
        raise Failure("protocol violation: %s" % what)

    def _check(self, data, flags, fds, at, taken):
        if flags & socket.MSG_TRUNC:
            self._violation("a message over %d bytes (3.1)" % MAX_MESSAGE)
        if flags & socket.MSG_CTRUNC:
            self._violation("a message with more than %d descriptors (3.1)" % MAX_FDS)
        if len(data) < HEADER.size:
            self._violation("a %d-byte message, shorter than the header (3.2)" % len(data))
        frame_type, version, reserved, size = HEADER.unpack_from(data)
        if version != PROTOCOL:
            self._violation("frame version %d (3.2)" % version)
        if reserved != 0:
            self._violation("reserved field %d (3.2)" % reserved)
        if size != len(data) - HEADER.size:
            self._violation("payload_size %d with %d bytes after the header (3.2)" % (size, len(data) - HEADER.size))
        if frame_type not in TYPE_NAMES:
            self._violation("unknown frame type %d (3.2)" % frame_type)
        payload = bytes(data[HEADER.size:])
        name = TYPE_NAMES[frame_type]
        if frame_type in (HANDOFF, HANDBACK):
            if not 1 <= len(fds) <= MAX_FDS or len(payload) != INDEX.size * len(fds):
                self._violation("%s frame with %d descriptors and %d payload bytes (3.2)"
                                % (name, len(fds), len(payload)))
        elif fds:
            self._violation("%s frame carrying %d descriptors (3.2)" % (name, len(fds)))
        if frame_type == PROGRESS and len(payload) != COUNTERS.size:
            self._violation("progress payload of %d bytes, not 24 (3.2)" % len(payload))
        if frame_type == CONTROL and not payload:
            self._violation("empty control payload (3.2)")
        message = self._decode_control(payload) if frame_type == CONTROL else None
        if self.ready is None and not (message is not None and message["type"] == "ready"):
            what = name if message is None else "control %r" % message["type"]
            self._violation("the first frame is %s, not ready (4.1: ready, first of all)" % what)
        if frame_type == HANDOFF:
            self._violation("a handoff frame from the worker (3.3: a worker MUST NOT send them)")
        if frame_type == PROGRESS:
            self._on_progress(COUNTERS.unpack(payload), at)
        elif frame_type == HANDBACK:
            self._on_handback(payload, fds, taken, at)
        else:
            self._on_control(message, at)

    def _decode_control(self, payload):
        try:
            message = json.loads(payload.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as error:
            self._violation("control payload is not UTF-8 JSON (%s) (3.5)" % error)
        if not isinstance(message, dict) or not isinstance(message.get("type"), str):
            self._violation("control payload is not an object with a string \"type\": %r (3.5)" % payload[:80])
        kind = message["type"]
        if kind in MASTER_MESSAGES:
            return message  # the master ignores these from a worker (3.5)
        if kind not in WORKER_MESSAGES:
            self._violation("unknown control message type %r (3.5: a protocol error)" % kind)
        for member in WORKER_MESSAGES[kind]:
            value = message.get(member)
            if type(value) is not int or not 0 <= value <= UINT64_MAX:
                self._violation("%s.%s is %r, not an integer in [0, 2^64) (3.5)" % (kind, member, value))
        return message

    def _on_control(self, message, at):
        kind = message["type"]
        self.frames.append((self.seq, kind, message, at))
        if kind == "ready" and self.ready is None:
            self.ready = message
            self.ready_at = at
        elif kind == "heartbeat":
            self.heartbeats.append((at, message))
        elif kind == "draining":
            self.drainings.append(self.seq)

    def _on_progress(self, counters, at):
        received, closed, requests = counters
        if self.progress is not None and any(new < old for new, old in zip(counters, self.progress)):
            self._violation("progress counters decreased: %s after %s (3.4: they never decrease)"
                            % (counters, self.progress))
        if closed > received:
            self._violation("progress says closed %d > received %d (3.4)" % (closed, received))
        if received > self.sent:
            self._violation("progress acknowledges %d descriptors, %d were handed off (3.4: the master kills it)"
                            % (received, self.sent))
        # As the master: close our copies of the oldest ones newly acknowledged.
        acknowledged = self.sent - len(self.pending)
        for conn in self.pending[:max(0, received - acknowledged)]:
            conn.acknowledge()
        del self.pending[:max(0, received - acknowledged)]
        possible = sum(1 for conn in self.conns if conn.may_be_closed())
        if closed > possible:
            self._violation("progress says closed = %d, but only %d of the %d connections handed to it can be "
                            "closed, the others are still open (3.4: closed counts connections it no longer holds; "
                            "3.6: a handback frame comes before the progress that counts it)"
                            % (closed, possible, len(self.conns)))
        self.progress = counters
        self.progress_seqs.append(self.seq)
        self.frames.append((self.seq, "progress", counters, at))

    def _on_handback(self, payload, fds, taken, at):
        indices = [value for (value,) in INDEX.iter_unpack(payload)]
        for fd, index in zip(fds, indices):
            conn = self.by_inode.get(os.fstat(fd).st_ino)
            if conn is None or conn.kind != "socket" or conn.handed_back is not None or conn not in self.conns:
                self._violation("a handback of a descriptor that is not one of the connections it holds (3.6)")
            if index != conn.index:
                self._violation("%s handed back with listener_index %d; it came with %d (3.6)"
                                % (conn.name(), index, conn.index))
            if not fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_NONBLOCK:
                self._violation("%s came back without O_NONBLOCK (3.3: it MUST stay set)" % conn.name())
            if not conn.data and not conn.sent_after:
                self._violation("%s handed back before its first request arrived (6.1: a connection handed "
                                "off for a request is served to the end)" % conn.name())
            conn.handed_back = fd
            taken.append(fd)
        self.handback_seqs.append(self.seq)
        self.frames.append((self.seq, "handback", indices, at))

    # --- waiting --------------------------------------------------------------------------

    def wait_until(self, condition, what, timeout=None, watch=(), eof_ok=False):
        timeout = self.tool.wait if timeout is None else timeout
        deadline = time.monotonic() + timeout
        while not condition():
            if self.eof and not eof_ok:
                raise Failure("the worker closed the channel before %s%s" % (what, self.exit_note()))
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise Failure("no %s within %.1f s%s" % (what, timeout, self.exit_note()))
            self.pump(min(remaining, 0.05), watch)

    def wait_ready(self):
        self.wait_until(lambda: self.ready is not None, "ready", self.tool.ready_wait)

    def received(self):
        return self.progress[0] if self.progress else 0

    def closed(self):
        return self.progress[1] if self.progress else 0

    def requests(self):
        return self.progress[2] if self.progress else 0

    def wait_acked(self, conns, what=None):
        what = what or "acknowledgement of %s" % ", ".join(c.name() for c in conns[:3]) + (
            " and %d more" % (len(conns) - 3) if len(conns) > 3 else "")
        self.wait_until(lambda: all(c.acked for c in conns), what)

    def ping(self, what):
        """A connection handed off and acknowledged: the worker is alive and reads its channel."""
        conn = self.connect()
        self.wait_acked([conn], "acknowledgement of a connection handed off after %s" % what)
        return conn

    def read_to_eof(self):
        self.wait_until(lambda: self.eof, "end of the channel after the exit", eof_ok=True)

    def stay(self, seconds, watch=()):
        """Reads the channel for a while; the worker must stay alive."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.pump(min(0.02, max(0.0, deadline - time.monotonic())), watch)
            if self.status() is not None:
                return False
        return True

    # --- HTTP (with --http) -----------------------------------------------------------------

    def read_response(self, conn, what="a complete response to GET /"):
        deadline = time.monotonic() + self.tool.wait
        while True:
            conn.read_available()
            parsed = parse_response(conn.rbuf, conn.eof)
            if parsed is not None:
                status, headers, used = parsed
                del conn.rbuf[:used]
                if status >= 200:
                    conn.responses += 1
                    return status, headers
                continue  # an interim 1xx
            if conn.eof:
                raise Failure("%s: %s before %s%s" % (conn.name(), "reset" if conn.reset else "closed", what,
                                                      self.exit_note()))
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise Failure("%s: no %s within %.1f s%s" % (conn.name(), what, self.tool.wait, self.exit_note()))
            self.pump(min(remaining, 0.05), [conn.client.fileno()])

    def exchange(self, conn):
        conn.send(HTTP_REQUEST)
        return self.read_response(conn)

    def wait_client_eof(self, conn, what):
        deadline = time.monotonic() + self.tool.wait
        while True:
            conn.read_available()
            if conn.eof:
                return
            if time.monotonic() >= deadline:
                raise Failure("%s: %s" % (conn.name(), what))
            self.pump(0.05, [conn.client.fileno()])

    def client_sees_close(self, conn):
        """True if the client sees the connection closed or shut down (nothing consumed)."""
        return bool(poll_events(conn.client.fileno()) & POLL_GONE)


# --- the cases --------------------------------------------------------------------------

CASES = []


def case(name, summary, http_only=False):
    def register(function):
        CASES.append((name, summary, http_only, function))
        return function
    return register


def progress_after(s, seq):
    return [counters for (n, kind, counters, _) in s.frames if kind == "progress" and n > seq]


@case("ready-first", "4.1, 3.5: ready is the first frame, within `timeout`, with the environment's id and "
      "generation and the worker's own pid; a heartbeat follows at once")
def ready_first(t):
    s = t.session(generation=4)
    s.wait_until(lambda: s.ready is not None, "ready (4.2: the master kills a worker not ready within timeout)",
                 t.timeout)
    expected = {"id": s.worker_id, "generation": 4, "pid": s.pid}
    for member, value in expected.items():
        if s.ready[member] != value:
            raise Failure("ready.%s is %r, expected %r (PREFORK_WORKER_ID, PREFORK_GENERATION, its pid)"
                          % (member, s.ready[member], value))
    s.wait_until(lambda: s.heartbeats, "heartbeat after ready (4.1)", t.limit)


@case("protocol-version", "7.2: a worker given a PREFORK_PROTOCOL it does not speak exits, with a message on "
      "stderr, rather than guess")
def protocol_version(t):
    s = t.session(protocol="2")
    s.wait_exit(t.wait, "still running %.1f s after being told PREFORK_PROTOCOL=2" % t.wait)
    s.read_to_eof()
    if s.frames:
        raise Failure("it sent %s though it does not speak protocol 2" % s.frames[0][1])
    if not s.log_tail():
        raise Failure("it exited (%s) without a message on stderr" % describe_status(s.exit_status))


def check_heartbeats(t, s, count, interval):
    limit = interval + max(0.1, interval / 4)
    s.wait_until(lambda: len(s.heartbeats) >= count, "%d heartbeats" % count, count * limit + 1)
    times = [s.ready_at] + [at for at, _ in s.heartbeats[:count]]
    gaps = [b - a for a, b in zip(times, times[1:])]
    if max(gaps) > limit:
        raise Failure("a %.3f s gap between heartbeats (ready first); they are due every %.3f s (4.2: timeout / 4, "
                      "clamped to [0.05, 1]); gaps: %s" % (max(gaps), interval, ", ".join("%.3f" % g for g in gaps)))


@case("heartbeats", "4.2, 3.5: heartbeats every timeout/4 (clamped to [50 ms, 1 s]), carrying open and served")
def heartbeats(t):
    s = t.session()
    s.wait_ready()
    check_heartbeats(t, s, 4, t.interval)
    for _, message in s.heartbeats:
        if (message["open"], message["served"]) != (0, 0):
            raise Failure("heartbeat %s with no connection ever handed off (3.5: open = received - closed, "
                          "served = requests)" % message)


@case("heartbeat-clamp", "4.2: with timeout 6, heartbeats every 1 s (the clamp), not every 1.5 s")
def heartbeat_clamp(t):
    s = t.session(config={"timeout": max(6.0, t.timeout)})
    s.wait_ready()
    check_heartbeats(t, s, 3, 1.0)


@case("handoff-while-starting", "3.3: a handoff that arrives before the worker is ready is served; ready stays "
      "the first frame")
def handoff_while_starting(t):
    s = t.session()
    conn = s.connect(t.probe)
    s.wait_ready()
    s.wait_acked([conn])
    if t.http:
        s.read_response(conn)


@case("ack-without-request", "3.4: a connection on which nothing has arrived is acknowledged at once (the "
      "acknowledgement is about the descriptor, not the request)")
def ack_without_request(t):
    s = t.session()
    s.wait_ready()
    conn = s.connect()
    s.wait_acked([conn], "acknowledgement of a connection on which nothing has arrived")


@case("ack-before-read", "3.4, 1: a connection with a request waiting is acknowledged before any byte of it is "
      "read or written (5 connections)")
def ack_before_read(t):
    s = t.session()
    s.wait_ready()
    for _ in range(5):
        conn = s.connect(t.probe)
        s.wait_acked([conn])  # pump() checks nothing was read or written before
        if t.http:
            s.read_response(conn)


@case("ack-full-channel", "3.4, 4.4: while the channel is full the acknowledgement waits, and so does the "
      "connection: nothing read until the acknowledgement went out")
def ack_full_channel(t):
    s = t.session(sndbuf=1)  # the worker's end: the smallest send buffer the kernel allows
    s.wait_ready()
    # Connections whose acknowledgements pile up unread until the worker cannot send more.
    fillers = []
    quiet = max(0.3, 2 * t.interval)
    full = False
    for _ in range(64):
        before = fionread(s.chan.fileno())
        fillers.append(s.connect())
        deadline = time.monotonic() + quiet
        while fionread(s.chan.fileno()) == before and time.monotonic() < deadline:
            time.sleep(0.005)
        if fionread(s.chan.fileno()) == before:
            full = True
            break
        if s.status() is not None:
            raise Failure("the worker exited%s" % s.exit_note())
    if not full:
        raise Skip("the channel did not fill (the worker enlarged its send buffer?): not checked")
    conn = s.connect(t.probe)
    touched = None
    deadline = time.monotonic() + max(0.5, 2 * t.interval)
    while touched is None and time.monotonic() < deadline:
        touched = conn.touched()
        if touched is None:
            time.sleep(0.005)
    if s.touched_before_acknowledged([(conn, touched)]):
        raise Failure("it %s %s while its acknowledgement could not be sent, the channel being full (3.4: "
                      "the connections wait with it)" % (touched, conn.name()))
    s.wait_acked(fillers + [conn], "acknowledgements held back by the full channel (4.4: a worker MUST keep "
                                   "progress and send it later)")
    if t.http:
        s.read_response(conn)


@case("handoff-32", "3.3, 3.4: 32 descriptors in one handoff frame and one more in the next, all acknowledged; "
      "their closes counted")
def handoff_32(t):
    s = t.session()
    s.wait_ready()
    data = HTTP_REQUEST if t.http else b""
    conns = [s.new_conn(data, index) for index in range(32)]
    s.handoff(conns)
    conns.append(s.connect(data, index=7))
    s.wait_acked(conns)
    if s.received() != 33:
        raise Failure("received is %d after 33 descriptors in 2 frames" % s.received())
    if t.http:
        for conn in conns:
            s.read_response(conn)
    for conn in conns:
        conn.close_client()
    s.wait_until(lambda: s.closed() >= 33, "progress with closed = 33 after the 33 clients closed (3.4)")
    if t.http and s.requests() != 33:
        s.wait_until(lambda: s.requests() >= 33, "progress with requests = 33 (33 responses)", 1.0)
        if s.requests() != 33:
            raise Failure("requests is %d after 33 responses" % s.requests())


@case("closed-counts", "3.4: closed counts the connections closed, soon after, and only them; counters never "
      "decrease")
def closed_counts(t):
    s = t.session()
    s.wait_ready()
    a, b = s.new_conn(), s.new_conn(index=1)
    s.handoff([a, b])
    c = s.connect(index=2)
    s.wait_acked([a, b, c])
    if t.http:
        s.exchange(a)
        s.exchange(b)
    a.close_client()
    b.close_client()
    s.wait_until(lambda: s.closed() >= 2, "progress with closed = 2 after 2 of 3 clients closed")
    if t.http:
        s.wait_until(lambda: s.requests() >= 2, "progress with requests = 2 after 2 responses", 1.0)
        if s.requests() != 2:
            raise Failure("requests is %d after 2 responses" % s.requests())
    if not s.stay(0.3):
        raise Failure("the worker exited%s" % s.exit_note())
    if s.closed() != 2 or s.client_sees_close(c):
        raise Failure("the open connection was closed or counted closed (closed = %d)" % s.closed())
    c.close_client()
    s.wait_until(lambda: s.closed() >= 3, "progress with closed = 3 after the last client closed")


@case("unusable-descriptor", "3.4: a descriptor that is not a socket counts as received and closed; the worker "
      "goes on")
def unusable_descriptor(t):
    s = t.session()
    s.wait_ready()
    pipe = s.new_conn(kind="pipe")
    s.handoff([pipe])
    s.wait_acked([pipe])
    s.wait_until(lambda: s.closed() >= 1, "progress with closed = 1 for a descriptor that is not a socket")
    conn = s.ping("a descriptor that is not a socket")
    if t.http:
        s.exchange(conn)


@case("descriptors", "2, 3.3, 7.2: after ready, no socket but the channel; a connection is received "
      "close-on-exec, keeps O_NONBLOCK, and is not held once reported closed")
def descriptors(t):
    s = t.session()
    s.wait_ready()
    channel = "socket:[%d]" % s.child_inode
    for fd, target in sorted(s.worker_fds().items()):
        if fd > 2 and target.startswith("socket:") and target != channel:
            raise Failure("after ready it holds descriptor %d, %s: a socket that is not its channel (the master "
                          "leaves it descriptors 0 to 3 only)" % (fd, target))
    conn = s.connect()
    s.wait_acked([conn])

    def check_flags(when):
        held = [fd for fd, target in s.worker_fds().items() if target == "socket:[%d]" % conn.inode]
        if not held:
            raise Failure("it does not hold %s %s, not reported closed either" % (conn.name(), when))
        for fd in held:
            flags = s.fd_flags(fd)
            if flags is not None and not flags & os.O_CLOEXEC:
                raise Failure("%s is descriptor %d without close-on-exec %s (2: receive with MSG_CMSG_CLOEXEC)"
                              % (conn.name(), fd, when))
            if flags is not None and not flags & os.O_NONBLOCK:
                raise Failure("%s lost O_NONBLOCK %s (3.3: it MUST stay set)" % (conn.name(), when))

    check_flags("once acknowledged")
    if t.http:
        s.exchange(conn)
        check_flags("after a response")
    conn.close_client()
    s.wait_until(lambda: s.closed() >= 1, "progress with closed = 1 after the client closed")
    if any(target == "socket:[%d]" % conn.inode for target in s.worker_fds().values()):
        raise Failure("it still holds %s after reporting it closed" % conn.name())


MALFORMED = [
    ("a 0-byte message (not end of file)", b"", 0),
    ("a 3-byte message", b"\x03\x01\x00", 0),
    ("a frame of version 2", frame(CONTROL, b'{"type":"reopen_logs"}', version=2), 0),
    ("a frame with reserved 7", frame(CONTROL, b'{"type":"reopen_logs"}', reserved=7), 0),
    ("a payload_size over the message", frame(CONTROL, b'{"type":"reopen_logs"}', size=100), 0),
    ("frame type 9", frame(9, b"abcd"), 0),
    ("an empty control payload", frame(CONTROL), 0),
    ("a control payload that is not JSON", frame(CONTROL, b"\xff{not json"), 0),
    ("a control payload that is not an object", frame(CONTROL, b"[1,2]"), 0),
    ("a control object without a type", frame(CONTROL, b'{"id":1}'), 0),
    ("a progress frame (worker to master only)", frame(PROGRESS, COUNTERS.pack(1, 2, 3)), 0),
    ("a 23-byte progress payload", frame(PROGRESS, b"x" * 23), 0),
    ("a handoff frame without descriptors", frame(HANDOFF, INDEX.pack(0)), 0),
    ("a handoff naming 2 descriptors that carries 1", frame(HANDOFF, INDEX.pack(0) * 2), 1),
    ("a control frame carrying a descriptor", frame(CONTROL, b'{"type":"reopen_logs"}'), 1),
    ("a handback frame (worker to master only)", frame(HANDBACK, INDEX.pack(0)), 1),
    ("a message over 65536 bytes", frame(CONTROL, b'{"type":"reopen_logs","pad":"' + b"a" * 65536 + b'"}'), 0),
]


@case("malformed-frames", "3.2, 2: malformed frames from the master are rejected (their descriptors closed, "
      "not counted) and the worker goes on")
def malformed_frames(t):
    s = t.session()
    s.wait_ready()
    last = None
    for what, data, fd_count in MALFORMED:
        ends = [socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM) for _ in range(fd_count)]
        try:
            s.send_message(data, [sent.fileno() for sent, _ in ends])
        finally:
            for sent, _ in ends:
                sent.close()
        for _, far in ends:
            s.strays.append(far.detach())
        last = s.ping(what)
        for fd in s.strays[len(s.strays) - fd_count:]:
            deadline = time.monotonic() + 1.0
            while not poll_events(fd) & select.POLLHUP:
                if time.monotonic() > deadline:
                    raise Failure("it kept the descriptor that came with %s (3.2: the receiver closes them)" % what)
                s.pump(0.01)
    if s.received() != s.sent:
        raise Failure("received is %d, %d descriptors came in well-formed handoffs" % (s.received(), s.sent))
    if t.http:
        s.exchange(last)


@case("unknown-control", "3.5: well-formed control messages a worker has no use for (an unknown type, a "
      "worker's own types) are ignored")
def unknown_control(t):
    s = t.session()
    s.wait_ready()
    last = None
    for message in ({"type": "conformance-probe", "x": 1}, {"type": "heartbeat", "open": 0, "served": 0},
                    {"type": "ready", "id": 1, "generation": 1, "pid": 1}, {"type": "draining"}):
        s.send_control(message)
        last = s.ping("control message %s" % json.dumps(message))
    if s.drainings:
        raise Failure("it started draining on a control message it has no use for")
    if t.http:
        s.exchange(last)


@case("reopen-logs", "3.5, 7.3: a reopen_logs message (log.file renamed first) does not break the worker")
def reopen_logs(t):
    directory = tempfile.mkdtemp(prefix="prefork-conformance-")
    path = os.path.join(directory, "worker.log")
    t.cleanups.append(lambda: shutil.rmtree(directory, ignore_errors=True))
    s = t.session(config={"log": {"file": path}}, log_path=path)  # descriptor 2 is log.file (7.2)
    s.wait_ready()
    os.rename(path, path + ".1")
    s.send_control({"type": "reopen_logs"})
    conn = s.ping("reopen_logs")
    beats = len(s.heartbeats)
    s.wait_until(lambda: len(s.heartbeats) > beats, "heartbeat after reopen_logs", 2 * t.limit)
    if t.http:
        s.exchange(conn)


@case("ignored-signals", "5, 7.3: HUP, USR1, USR2, TTIN and TTOU neither kill nor stop the worker, nor make it "
      "drain")
def ignored_signals(t):
    s = t.session()
    s.wait_ready()
    for sig in (signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2, signal.SIGTTIN, signal.SIGTTOU):
        s.signal(sig)
        s.stay(0.1)
        if s.status() is not None:
            raise Failure("%s ended it (%s)" % (sig.name, describe_status(s.status())))
        if s.state() in ("T", "t"):
            raise Failure("%s stopped it" % sig.name)
        if s.drainings:
            raise Failure("%s made it drain" % sig.name)
    beats = len(s.heartbeats)
    s.wait_until(lambda: len(s.heartbeats) > beats, "heartbeat after the signals", t.limit)
    conn = s.ping("the signals")
    if t.http:
        s.exchange(conn)


@case("term-idle", "6.1: TERM with nothing open: draining, a final progress, exit status 0")
def term_idle(t):
    s = t.session()
    s.wait_ready()
    s.signal(signal.SIGTERM)
    s.wait_until(lambda: s.drainings, "draining after TERM (6.1)")
    status = s.wait_exit(t.wait, "still running %.1f s after TERM with nothing open (6.1.5)" % t.wait)
    s.read_to_eof()
    if status != 0:
        raise Failure("exited with %s after TERM (6.1.5: status 0)" % describe_status(status))
    if not progress_after(s, s.drainings[0]):
        raise Failure("no progress frame after draining, before the exit (3.4, 6.1.5: the final progress)")


@case("term-drain", "6.1, 3.3: after TERM, connections awaiting their first request are served to the end, a "
      "handoff is still served, and the worker exits 0 once nothing is open")
def term_drain(t):
    s = t.session()
    s.wait_ready()
    a = s.connect(index=0)
    s.wait_acked([a])
    b = s.connect(index=1)  # handed off just before the TERM
    s.signal(signal.SIGTERM)
    s.wait_until(lambda: s.drainings, "draining after TERM (6.1)")
    s.wait_acked([b], "acknowledgement of a connection handed off just before TERM (6.1.5)")
    if not s.stay(0.3):
        raise Failure("it exited while connections awaiting their first request were open (6.1.4)%s"
                      % s.exit_note())
    for conn in (a, b):
        if s.client_sees_close(conn):
            raise Failure("%s, awaiting its first request, was closed on TERM (6.1.4)" % conn.name())
    c = s.connect(index=2)
    s.wait_acked([c], "acknowledgement of a handoff while draining (3.3: a worker MUST serve every handoff)")
    for conn in (a, b, c):
        if t.http:
            _, headers = s.exchange(conn)
            if not says_close(headers):
                raise Failure("%s: a response while draining without Connection: close (6.1.1)" % conn.name())
            s.wait_client_eof(conn, "not closed after its response while draining (6.1.1)")
        else:
            if s.status() is not None:
                raise Failure("it exited while a connection was open (6.1.4)%s" % s.exit_note())
            conn.close_client()
    status = s.wait_exit(t.wait, "still running %.1f s after its last connection closed (6.1.5)" % t.wait)
    s.read_to_eof()
    if status != 0:
        raise Failure("exited with %s after TERM (6.1.5: status 0)" % describe_status(status))
    final = progress_after(s, s.drainings[0])
    if not final or final[-1][:2] != (3, 3):
        raise Failure("the last progress is %s, expected received = closed = 3 (6.1.5)"
                      % (final[-1] if final else "none after draining"))
    if t.http and final[-1][2] != 3:
        raise Failure("the last progress says requests = %d after 3 responses" % final[-1][2])


@case("term-handback", "6.1, 3.6: on TERM an idle keep-alive connection is handed back alive (before the "
      "progress that counts it); one in flight is answered with Connection: close", http_only=True)
def term_handback(t):
    s = t.session()
    s.wait_ready()
    idle = s.connect(index=3)
    s.wait_acked([idle])
    _, headers = s.exchange(idle)
    if says_close(headers) or idle.eof:
        raise Failure("the response to GET / closes the connection: cannot make one idle for this check")
    waiting = s.connect(index=0)
    s.wait_acked([waiting])
    s.signal(signal.SIGTERM)
    s.wait_until(lambda: s.drainings, "draining after TERM (6.1)")
    s.wait_until(lambda: idle.handed_back is not None, "handback of the idle keep-alive connection (6.1.2)")
    if s.client_sees_close(idle) or fionread(idle.client.fileno()):
        raise Failure("the client of the handed-back connection saw data, a close or a shutdown (3.6)")
    idle.send(b"x")
    deadline = time.monotonic() + 1.0
    while fionread(idle.handed_back) < 1 and time.monotonic() < deadline:
        time.sleep(0.005)
    if fionread(idle.handed_back) != 1:
        raise Failure("the handed-back connection does not carry what its client sends (the worker read it?)")
    _, headers = s.exchange(waiting)
    if not says_close(headers):
        raise Failure("a response while draining without Connection: close (6.1.1)")
    s.wait_client_eof(waiting, "not closed after its response while draining (6.1.1)")
    status = s.wait_exit(t.wait, "still running %.1f s after its last connection closed (6.1.5)" % t.wait)
    s.read_to_eof()
    if status != 0:
        raise Failure("exited with %s after TERM (6.1.5: status 0)" % describe_status(status))
    if s.progress != (2, 2, 2):
        raise Failure("the last progress is %s, expected (2, 2, 2)" % (s.progress,))


@case("drain-message", "6.2: the master's drain: draining, nothing handed back, open connections served to "
      "the end, exit 0")
def drain_message(t):
    s = t.session()
    s.wait_ready()
    conn = s.connect()
    s.wait_acked([conn])
    if t.http:
        s.exchange(conn)  # idle between requests now
    s.send_control({"type": "drain"})
    s.wait_until(lambda: s.drainings, "draining after a drain message (3.5)")
    alive = s.stay(0.3)
    if s.handback_seqs:
        raise Failure("it handed back a connection on drain (6.2: nothing is handed back)")
    if not alive:
        raise Failure("it exited with a connection open (6.2)%s" % s.exit_note())
    if s.client_sees_close(conn):
        raise Failure("%s was closed on drain (6.2)" % conn.name())
    if t.http:
        _, headers = s.exchange(conn)
        if not says_close(headers):
            raise Failure("the next response after drain without Connection: close (6.2)")
        s.wait_client_eof(conn, "not closed after its response after drain (6.2)")
    else:
        conn.close_client()
    status = s.wait_exit(t.wait, "still running %.1f s after its last connection closed (6.2)" % t.wait)
    s.read_to_eof()
    if status != 0:
        raise Failure("exited with %s after drain (status 0)" % describe_status(status))
    final = progress_after(s, s.drainings[0])
    if not final or final[-1][:2] != (1, 1):
        raise Failure("the last progress is %s, expected received = closed = 1"
                      % (final[-1] if final else "none after draining"))
    if s.handback_seqs:
        raise Failure("it handed back a connection on drain (6.2: nothing is handed back)")


@case("graceful-timeout", "6.1.6: with a connection that never sends, the worker exits graceful_timeout after "
      "the last TERM (a second TERM restarts the countdown and does nothing else), final progress first")
def graceful_timeout(t):
    grace = 0.8
    s = t.session(config={"graceful_timeout": grace})
    s.wait_ready()
    conn = s.connect()
    s.wait_acked([conn])
    s.signal(signal.SIGTERM)
    s.wait_until(lambda: s.drainings, "draining after TERM (6.1)")
    if not s.stay(0.3):
        raise Failure("it exited 0.3 s after TERM, graceful_timeout is %g s%s" % (grace, s.exit_note()))
    second = time.monotonic()
    s.signal(signal.SIGTERM)
    s.wait_exit(grace + 1.5, "still running %.1f s after TERM, graceful_timeout %g s (6.1.6)" % (grace + 1.5, grace))
    took = s.exit_at - second
    if took < grace - 0.1:
        raise Failure("it exited %.2f s after a second TERM; that TERM restarts the graceful_timeout (%g s) "
                      "countdown (6.1)" % (took, grace))
    s.read_to_eof()
    if len(s.drainings) != 1:
        raise Failure("%d draining messages: a second TERM does nothing else (6.1)" % len(s.drainings))
    final = progress_after(s, s.drainings[0])
    if not final or final[-1][0] != 1:
        raise Failure("no final progress acknowledging the connection after draining (6.1.6)")


def fast_exit(t, sig):
    s = t.session()
    s.wait_ready()
    conn = s.connect()
    s.wait_acked([conn])
    if t.http:
        s.exchange(conn)
    s.drain()
    mark = s.seq
    s.signal(sig)
    status = s.wait_exit(1.0, "still running 1 s after %s (6.3: exit now; the master SIGKILLs it at 1 s)" % sig.name)
    s.read_to_eof()
    if status != 0:
        raise Failure("exited with %s after %s (6.3: status 0)" % (describe_status(status), sig.name))
    final = progress_after(s, mark)
    if not final:
        raise Failure("no final progress after %s (6.3)" % sig.name)
    if final[-1][0] != 1:
        raise Failure("the final progress is %s, received should be 1" % (final[-1],))


@case("sigint", "6.3: INT with a connection open: a final progress, exit status 0 within 1 s")
def sigint(t):
    fast_exit(t, signal.SIGINT)


@case("sigquit", "5, 6.3: QUIT is the same as INT")
def sigquit(t):
    fast_exit(t, signal.SIGQUIT)


@case("channel-eof", "6.3: the end of the channel (the master is gone) makes the worker exit at once")
def channel_eof(t):
    s = t.session()
    s.wait_ready()
    conn = s.connect()
    s.wait_acked([conn])
    s.close_channel()
    s.wait_exit(2.0, "still running 2 s after its channel closed (6.3: exit at once)")


# --- the runner -------------------------------------------------------------------------

class Tool:
    def __init__(self, args):
        self.http = args.http
        self.verbose = args.verbose
        self.command = args.command
        self.timeout = args.timeout
        self.interval = clamp(self.timeout / 4, 0.05, 1.0)
        self.limit = self.interval + max(0.1, self.interval / 4)  # the longest gap accepted between heartbeats
        self.wait = max(3.0, self.timeout)  # the bound of waits for what should come at once
        self.ready_wait = max(5.0, 2 * self.timeout)  # ready, outside the ready-first case
        self.probe = HTTP_REQUEST if self.http else NEUTRAL_BYTES
        self.sessions = []
        self.cleanups = []
        self.worker_ids = 0
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            self.prctl = libc.prctl
        except (OSError, AttributeError):
            self.prctl = None

    def next_worker_id(self):
        self.worker_ids += 1
        return self.worker_ids

    def config(self, overrides=None):
        """The effective configuration, as `preforkd --check-config` prints it."""
        settings = {
            "bind": ["unix:run/conformance.sock"], "workers": 1, "worker_connections": 1000, "backlog": 1024,
            "timeout": seconds_json(self.timeout), "graceful_timeout": 10, "max_requests": 0,
            "max_requests_jitter": 0, "keepalive": 30, "dispatch": "least-connections",
            "restart": {"min_uptime_ms": 1000, "backoff_initial_ms": 100, "backoff_max_ms": 30000},
            "control": "run/conformance.ctl", "socket_mode": "0660", "pid_file": None,
            "log": {"level": "info", "file": "-", "format": "text"}, "app": "hello", "exec": list(self.command),
            "http": {"max_header_bytes": 8192, "max_body_bytes": 1048576, "request_timeout": 30}, "metrics": None,
        }
        for key, value in (overrides or {}).items():
            if isinstance(value, dict):
                settings[key] = dict(settings[key], **value)
            else:
                settings[key] = seconds_json(value) if isinstance(value, float) else value
        return settings

    def session(self, **kwargs):
        s = Session(self, **kwargs)
        self.sessions.append(s)  # closed (killed) by run_case whatever happens
        return s.start()

    def run_case(self, function):
        """(passed, note) for one case; every worker it started is killed before it returns."""
        try:
            function(self)
            return True, "ok"
        except Skip as skip:
            return True, "ok (%s)" % skip
        except Failure as failure:
            return False, "FAIL: %s" % failure
        except Exception as error:  # a bug here, or the worker made this tool trip: fail the case
            if self.verbose:
                traceback.print_exc()
            return False, "FAIL: error in the conformance tool: %s: %s" % (type(error).__name__, error)
        finally:
            self.tails = [s.log_tail() for s in self.sessions]
            for s in self.sessions:
                s.close()
            self.sessions = []
            for cleanup in self.cleanups:
                cleanup()
            self.cleanups = []


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="run.py", description="Checks a prefork worker command against lib/PROTOCOL.md (version 1), playing "
        "its master; one line per case, then `N passed, M failed`; exit status 0 only if all passed.",
        usage="%(prog)s [--http] [--timeout S] [--case NAME]... [--list] [-v] -- COMMAND [ARGS...]")
    parser.add_argument("--http", action="store_true",
                        help="the worker serves HTTP/1.1: cases that need an exchange send GET / and expect any "
                             "complete HTTP/1.1 response (and the handback case runs)")
    parser.add_argument("--timeout", type=float, default=2.0, metavar="S",
                        help="the `timeout` the worker is configured with (default 2): ready is due within it, "
                             "heartbeats every timeout/4 clamped to [0.05, 1]")
    parser.add_argument("--case", action="append", metavar="NAME", help="run only this case (repeatable)")
    parser.add_argument("--list", action="store_true", help="list the cases and exit")
    parser.add_argument("-v", "--verbose", action="store_true", help="after a failure, show the worker's log tail")
    parser.add_argument("command", nargs=argparse.REMAINDER, metavar="-- COMMAND [ARGS...]")
    args = parser.parse_args(argv)
    if args.list:
        for name, summary, http_only, _ in CASES:
            print("%-24s %s%s" % (name, summary, " (--http)" if http_only else ""))
        return 0
    if args.command and args.command[0] == "--":
        args.command = args.command[1:]
    if not args.command:
        parser.error("no worker command (after --)")
    if not args.timeout > 0:
        parser.error("--timeout must be positive")
    if shutil.which(args.command[0]) is None:
        parser.error("cannot execute %r (not found or not executable)" % args.command[0])
    names = [name for name, _, _, _ in CASES]
    for name in args.case or []:
        if name not in names:
            parser.error("unknown case %r (--list shows them)" % name)
    if not sys.platform.startswith("linux"):
        parser.error("Linux only (SOCK_SEQPACKET, SCM_RIGHTS, /proc)")

    def stop(signum, _frame):
        raise KeyboardInterrupt("signal %d" % signum)

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, stop)
    tool = Tool(args)
    width = max(len(name) for name in names) + 2
    passed = failed = 0
    try:
        for name, _, http_only, function in CASES:
            if args.case and name not in args.case:
                continue
            if http_only and not args.http:
                print("%-*s skipped (needs --http)" % (width, name), flush=True)
                continue
            good, note = tool.run_case(function)
            print("%-*s %s" % (width, name, note), flush=True)
            if good:
                passed += 1
            else:
                failed += 1
                if args.verbose:
                    for tail in tool.tails:
                        for line in tail:
                            print("    | " + line)
    except KeyboardInterrupt:
        print("interrupted", flush=True)
        return 130
    print("%d passed, %d failed" % (passed, failed), flush=True)
    return 0 if failed == 0 and passed > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
