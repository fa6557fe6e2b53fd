"""The worker: one single-threaded selectors loop over the channel, the client connections,
the signal wake-up descriptor and the timers. It speaks the channel protocol exactly as the
C++ worker (lib/src/worker/worker_runtime.cpp) does; lib/PROTOCOL.md is the reference.

- Handed-off descriptors are acknowledged (a progress frame) one at a time, each just
  before the worker starts on it, and never read before: until the master has the
  acknowledgement it may give them to another worker. The app runs on this loop one call
  at a time, so the connections waiting behind a call stay the master's: if the worker
  dies, they go to another worker, and only the ones it had started die with it.
- Heartbeats come from this loop. The WSGI app runs on it too, so an app call that blocks
  for `timeout` stops the heartbeats and the master kills and replaces the worker; the
  connections it had acknowledged die with it (clients see a reset or EOF), the ones not
  yet acknowledged go to another worker.
- TERM: drain. Idle keep-alive connections go back to the master (handback frames), the
  requests in flight are answered with `Connection: close`, and the worker exits once
  nothing is open, or at graceful_timeout. The master's `drain` message: the same
  without handback (each connection's next request is answered with `Connection: close`)
  and without a deadline of the worker's own. INT, QUIT: exit now. Channel EOF: the
  master is gone, exit now.
"""

import logging
import os
import selectors
import signal
import socket
import time

from . import channel, http11, wsgi

log = logging.getLogger("prefork_wsgi")

# Responses (pipelined, or a streamed body) are batched in the output buffer up to this size.
FLUSH_THRESHOLD = 64 * 1024
READ_SIZE = 64 * 1024
# Longest time a closing connection keeps reading (and discarding) what the client sends.
LINGER_TIMEOUT = 2.0

# Connection phases.
NEW, READ, RESPOND, IDLE, LINGER, CLOSED = "new", "read", "respond", "idle", "linger", "closed"
# When closing a connection reads and discards what the client still sends first (as the
# C++ apps do: closing with unread data resets the connection, and the reset can destroy
# the response before the client reads it).
NEVER, ALWAYS, IF_BUFFERED, IF_DATA_PENDING = "never", "always", "if_buffered", "if_data_pending"
# What a drain does with idle connections.
HAND_BACK, SERVE_LAST = "hand_back", "serve_last"

_CHANNEL = object()
_WAKE = object()


def heartbeat_interval(timeout):
    """timeout / 4, clamped to [50 ms, 1 s] (worker_runtime.cpp)."""
    return min(max(timeout / 4.0, 0.05), 1.0)


class Config:
    """The settings the worker uses, from PREFORK_CONFIG (preforkd --check-config's JSON;
    times in seconds, fractions allowed)."""

    def __init__(self, settings=None):
        settings = settings or {}
        http = settings.get("http") or {}
        self.timeout = float(settings.get("timeout", 30))
        self.graceful_timeout = float(settings.get("graceful_timeout", 30))
        self.keepalive = float(settings.get("keepalive", 5))
        self.max_header_bytes = int(http.get("max_header_bytes", 8192))
        self.max_body_bytes = int(http.get("max_body_bytes", 1048576))
        self.request_timeout = float(http.get("request_timeout", 10))
        self.log = settings.get("log") or {}
        self.raw = settings


class Connection:
    __slots__ = ("sock", "listener_index", "phase", "buffer", "out", "reader", "deadline", "mask", "call",
                 "chunked", "no_body", "remaining", "responses_pending", "closing", "request", "environ_base",
                 "keep_alive")

    def __init__(self, sock, listener_index):
        self.sock = sock
        self.listener_index = listener_index
        self.phase = NEW
        self.buffer = bytearray()
        self.out = bytearray()
        self.reader = None
        self.deadline = None
        self.mask = 0
        self.call = None
        self.chunked = False
        self.no_body = False
        self.remaining = None
        self.responses_pending = 0  # complete responses in `out`, counted once written
        self.closing = None  # linger mode once the current response is the last
        self.request = None
        self.environ_base = None
        self.keep_alive = True


class Worker:
    def __init__(self, chan, app, config, worker_id=0, generation=0, log_handler=None):
        self.chan = chan
        self.app = app
        self.config = config
        self.worker_id = worker_id
        self.generation = generation
        self.log_handler = log_handler
        self.sel = selectors.DefaultSelector()
        self.conns = set()
        self.held = []  # from the channel, not counted yet: a Connection, or a count of lost descriptors
        self.unacknowledged = []  # received, acknowledgement not sent yet
        self.to_start = []  # acknowledged, not started yet
        self.control_outbox = []
        self.handbacks = []  # (fd, listener_index)
        self.received = 0
        self.closed = 0
        self.requests = 0
        self.reported_closed = 0
        self.progress_dirty = False
        self.channel_mask = 0
        self.draining = False
        self.drain_policy = None
        self.graceful_deadline = None
        self.pending_signals = []
        self.in_app = False
        self.finishing = False
        self.wake_r = self.wake_w = None

    # --- the loop ------------------------------------------------------------------------

    def open_connections(self):
        return self.received - self.closed + len(self.held)

    def run(self):
        """Serves until told to stop or the master goes away; never returns (os._exit)."""
        try:
            self._run()
        except BaseException:
            log.critical("worker failed", exc_info=True)
            os._exit(1)

    def _run(self):
        self.chan.setblocking(False)
        self.chan.set_inheritable(False)
        self._install_signals()
        self._want_channel(selectors.EVENT_READ)
        self._queue_control("ready", id=self.worker_id, generation=self.generation, pid=os.getpid())
        interval = heartbeat_interval(self.config.timeout)
        self._heartbeat()
        next_heartbeat = time.monotonic() + interval
        while True:
            now = time.monotonic()
            wake_at = next_heartbeat
            if self.graceful_deadline is not None:
                wake_at = min(wake_at, self.graceful_deadline)
            for conn in self.conns:
                if conn.deadline is not None and conn.deadline < wake_at:
                    wake_at = conn.deadline
            startable = self.to_start or (self.held and not self.unacknowledged)
            timeout = 0 if startable or self.pending_signals else max(0.0, wake_at - now)
            for key, mask in self.sel.select(timeout):
                self._on_event(key.data, mask)
            self._handle_signals()
            now = time.monotonic()
            if now >= next_heartbeat:
                self._heartbeat()
                next_heartbeat = now + interval
            self._expire(now)
            self._start_received()
            if self.closed != self.reported_closed and not self.progress_dirty:
                self._send_progress()  # close reports, one frame per loop turn at most
            if self.draining:
                self._exit_if_drained()
            if self.graceful_deadline is not None and time.monotonic() >= self.graceful_deadline:
                log.warning("graceful timeout: worker exits with open connections",
                            extra={"fields": {"open": self.open_connections()}})
                self.finish(0)

    def _on_event(self, target, mask):
        if target is _CHANNEL:
            if mask & selectors.EVENT_WRITE:
                self._flush()
            if mask & selectors.EVENT_READ and not self._read_channel():
                self._master_gone()
        elif target is _WAKE:
            try:
                while os.read(self.wake_r, 512):
                    pass
            except (BlockingIOError, InterruptedError):
                pass
        elif target.phase != CLOSED:
            self._drive(target)

    def _master_gone(self):
        # Nobody can receive our counters or hand us more work: exit now (PR_SET_PDEATHSIG
        # usually got here first).
        log.warning("master went away; worker exiting", extra={"fields": {"open": self.open_connections()}})
        os._exit(0)

    def finish(self, status):
        """Sends the final counters (one attempt), logs, and ends the process."""
        if self.finishing:
            os._exit(status)
        self.finishing = True
        self.progress_dirty = True
        self._flush()
        log.info("worker exiting", extra={"fields": {"served": self.requests}})
        os._exit(status)

    # --- signals -------------------------------------------------------------------------

    def _install_signals(self):
        self.wake_r, self.wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.sel.register(self.wake_r, selectors.EVENT_READ, _WAKE)
        signal.set_wakeup_fd(self.wake_w, warn_on_full_buffer=False)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT):
            signal.signal(sig, self._on_signal)
        # The master's business (the C++ worker blocks them): a HUP or TTIN sent to the
        # whole process group must not kill or stop a worker.
        for sig in (signal.SIGHUP, signal.SIGTTIN, signal.SIGTTOU, signal.SIGUSR1, signal.SIGUSR2):
            signal.signal(sig, signal.SIG_IGN)

    def _on_signal(self, signum, frame):
        self.pending_signals.append(signum)
        if signum in (signal.SIGINT, signal.SIGQUIT) and self.in_app:
            self.finish(0)  # an app call may take long: exit now, from the handler

    def _handle_signals(self):
        while self.pending_signals:
            sig = self.pending_signals.pop(0)
            if sig == signal.SIGTERM:
                self._begin_drain(HAND_BACK)
                self.graceful_deadline = time.monotonic() + self.config.graceful_timeout
            elif sig in (signal.SIGINT, signal.SIGQUIT):
                self.finish(0)

    # --- the channel ---------------------------------------------------------------------

    def _want_channel(self, mask):
        if mask == self.channel_mask:
            return
        if self.channel_mask == 0:
            self.sel.register(self.chan, mask, _CHANNEL)
        else:
            self.sel.modify(self.chan, mask, _CHANNEL)
        self.channel_mask = mask

    def _read_channel(self):
        """Reads every frame that is there; False once the channel is gone."""
        while True:
            try:
                frame = channel.recv_frame(self.chan)
            except (BlockingIOError, InterruptedError):
                break
            except channel.ChannelClosed:
                return False
            except channel.FrameTruncated as error:
                log.error("channel receive failed", extra={"fields": {"error": str(error)}})
                if error.frame_type == channel.HANDOFF and error.lost_fds:
                    # Out of descriptors: these connections are gone, but they must be
                    # acknowledged (as received and closed), or the master keeps its copies.
                    self.held.append(error.lost_fds)
                continue
            except channel.FrameError as error:
                log.error("channel receive failed", extra={"fields": {"error": str(error)}})
                continue
            except OSError as error:
                log.error("channel receive failed", extra={"fields": {"error": str(error)}})
                return False
            if frame.type == channel.HANDOFF:
                for fd, index in zip(frame.fds, channel.decode_indices(frame.payload)):
                    self._receive(fd, index)
            elif frame.type == channel.CONTROL:
                self._on_control(frame.payload)
            else:
                frame.close_fds()
                log.warning("unexpected frame from master", extra={"fields": {"type": frame.type}})
        return True

    def _on_control(self, payload):
        try:
            message = channel.decode_control(payload)
        except channel.FrameError:
            message = None
        kind = message and message["type"]
        if kind == "reopen_logs":
            if self.log_handler is not None:
                try:
                    self.log_handler.reopen()
                except OSError as error:
                    log.error("cannot reopen log file", extra={"fields": {"error": str(error)}})
        elif kind == "drain":
            self._begin_drain(SERVE_LAST)
        else:
            log.warning("unexpected control message from master",
                        extra={"fields": {"message": bytes(payload).decode("utf-8", "replace")}})

    def _receive(self, fd, listener_index):
        try:
            sock = socket.socket(fileno=fd)
            sock.setblocking(False)
        except OSError as error:
            os.close(fd)
            self.held.append(1)  # acknowledged in its turn, as received and closed
            log.error("received descriptor is not a socket", extra={"fields": {"error": str(error)}})
            return
        # Not acknowledged, not read, not even registered until the worker starts on it.
        self.held.append(Connection(sock, listener_index))

    def _queue_control(self, kind, **fields):
        self.control_outbox.append(channel.encode_control(kind, **fields))
        self._flush()

    def _heartbeat(self):
        # A heartbeat that cannot go out now is dropped; the next one follows.
        if self.control_outbox:
            return
        try:
            channel.send_frame(self.chan, channel.CONTROL,
                               channel.encode_control("heartbeat", open=self.open_connections(), served=self.requests))
        except OSError:
            pass

    def _send_progress(self):
        self.progress_dirty = True
        self._flush()

    def _flush(self):
        """Sends queued control messages, then handed-back connections, then the latest
        cumulative counters; once the counters went out, the connections they acknowledge
        may be served."""
        while self.control_outbox:
            try:
                channel.send_frame(self.chan, channel.CONTROL, self.control_outbox[0])
            except BlockingIOError:
                return self._want_channel(selectors.EVENT_READ | selectors.EVENT_WRITE)
            except OSError:
                return  # the master is gone; channel EOF ends us
            self.control_outbox.pop(0)
        while self.handbacks:
            batch = self.handbacks[:channel.MAX_FDS_PER_FRAME]
            fds = [fd for fd, _ in batch]
            try:
                channel.send_frame(self.chan, channel.HANDBACK, channel.encode_indices(i for _, i in batch), fds)
            except BlockingIOError:
                return self._want_channel(selectors.EVENT_READ | selectors.EVENT_WRITE)
            except OSError as error:
                log.error("cannot hand connections back", extra={"fields": {"count": len(batch), "error": str(error)}})
            # Sent (the master has its own copies now) or failed: ours are closed either way.
            for fd in fds:
                os.close(fd)
            del self.handbacks[:len(batch)]
        if self.progress_dirty:
            closed = self.closed
            try:
                channel.send_frame(self.chan, channel.PROGRESS,
                                   channel.encode_progress(self.received, closed, self.requests))
            except BlockingIOError:
                return self._want_channel(selectors.EVENT_READ | selectors.EVENT_WRITE)
            except OSError:
                pass  # the master is gone; channel EOF ends us
            self.progress_dirty = False
            self.reported_closed = closed
            self.to_start.extend(self.unacknowledged)
            self.unacknowledged = []
        self._want_channel(selectors.EVENT_READ)

    def _start_received(self):
        """Acknowledges the held connections one at a time, each just before it is started:
        the app runs on this loop, so the ones still waiting behind it stay the master's
        (another worker gets them if this one dies)."""
        while True:
            self._start_acknowledged()
            if not self.held or self.unacknowledged:
                break  # nothing more, or the acknowledgement waits for the channel
            item = self.held.pop(0)
            if isinstance(item, int):  # lost or unusable descriptors: received and closed
                self.received += item
                self.closed += item
                self.progress_dirty = True
                continue
            self.received += 1
            self.unacknowledged.append(item)
            self._send_progress()
        if self.progress_dirty and not self.unacknowledged:
            self._flush()

    def _start_acknowledged(self):
        while self.to_start:
            conn = self.to_start.pop(0)
            self.conns.add(conn)
            self._begin_request(conn)
            # The first request is read at once (no reactor), within request_timeout.
            self._drive(conn)

    # --- draining ------------------------------------------------------------------------

    def _begin_drain(self, policy):
        if self.draining:
            return
        log.info("worker draining", extra={"fields": {"open": self.open_connections()}})
        self.draining = True
        self.drain_policy = policy
        if policy == HAND_BACK:
            # Idle keep-alive connections go back to the master, which gives them to
            # another worker: their clients never see a reset.
            for conn in [c for c in self.conns if c.phase == IDLE]:
                self._hand_back(conn)
        self._queue_control("draining")
        self._exit_if_drained()

    def _hand_back(self, conn):
        self._set_mask(conn, 0)
        self.conns.discard(conn)
        conn.phase = CLOSED
        self.handbacks.append((conn.sock.detach(), conn.listener_index))
        self.closed += 1

    def _exit_if_drained(self):
        if not self.draining or self.open_connections() != 0 or self.finishing:
            return
        if self.handbacks or self.control_outbox:
            self.progress_dirty = True
            self._flush()  # the loop calls back here; the frames go out first
            return
        if self.progress_dirty:
            return  # waiting for the channel to take our counters
        # A frame sent just before our TERM may still sit in the channel: serve it first.
        if not self._read_channel():
            self.finish(0)
        if self.open_connections() == 0:
            self.finish(0)

    # --- connections ---------------------------------------------------------------------

    def _set_mask(self, conn, mask):
        if mask == conn.mask:
            return
        if conn.mask == 0:
            self.sel.register(conn.sock, mask, conn)
        elif mask == 0:
            self.sel.unregister(conn.sock)
        else:
            self.sel.modify(conn.sock, mask, conn)
        conn.mask = mask

    def _begin_request(self, conn):
        conn.phase = READ
        conn.reader = http11.RequestReader(self.config.max_header_bytes, self.config.max_body_bytes)
        conn.deadline = time.monotonic() + self.config.request_timeout

    def _become_idle(self, conn):
        if self.draining and self.drain_policy == HAND_BACK:
            # Idle only now (its last response was built as keep-alive before the drain):
            # the client may reuse it, so it goes back too.
            self._hand_back(conn)
            return
        conn.phase = IDLE
        conn.reader = None
        conn.deadline = time.monotonic() + self.config.keepalive
        self._set_mask(conn, selectors.EVENT_READ)

    def _close(self, conn, mode=NEVER):
        if conn.phase == CLOSED:
            return
        if conn.call is not None:
            conn.call.close()
            conn.call = None
        linger = mode == ALWAYS or (mode != NEVER and conn.buffer) or (
            mode == IF_DATA_PENDING and _data_pending(conn.sock))
        if linger and conn.phase != LINGER:
            try:
                conn.sock.shutdown(socket.SHUT_WR)
            except OSError:
                linger = False
        if linger and conn.phase != LINGER:
            conn.phase = LINGER
            conn.buffer.clear()
            conn.deadline = time.monotonic() + min(LINGER_TIMEOUT, self.config.request_timeout)
            self._set_mask(conn, selectors.EVENT_READ)
            return
        self._set_mask(conn, 0)
        conn.phase = CLOSED
        conn.sock.close()
        self.conns.discard(conn)
        self.closed += 1

    def _expire(self, now):
        for conn in [c for c in self.conns if c.deadline is not None and now >= c.deadline]:
            conn.deadline = None
            if conn.phase == READ and not conn.out:
                if conn.reader is not None and conn.reader.got_some:
                    self._answer_error(conn, 408)
                    self._drive(conn)
                else:
                    self._close(conn, NEVER)  # nothing of a request arrived: nobody waits
            elif conn.phase == IDLE:
                self._close(conn, IF_DATA_PENDING)
            else:  # a write that did not progress, a linger that is over
                self._close(conn, NEVER)

    def _answer_error(self, conn, status):
        head_only = conn.reader is not None and conn.reader.request is not None and \
            conn.reader.request.method == "HEAD"
        conn.out += http11.error_response(status, head_only)
        conn.responses_pending += 1
        conn.closing = ALWAYS  # the client may still be sending what we refused
        conn.phase = RESPOND
        conn.deadline = None

    def _drive(self, conn):
        """Moves a connection on as far as it goes without waiting."""
        while conn.phase != CLOSED:
            if conn.phase == LINGER:
                self._discard_input(conn)
                return
            if conn.phase == IDLE:
                self._begin_request(conn)  # readable: the next request (or EOF) is there
                continue
            if conn.phase == READ:
                try:
                    request = conn.reader.parse(conn.buffer)
                except http11.HttpError as error:
                    self._answer_error(conn, error.status)
                    continue
                if request is not None:
                    conn.deadline = None
                    self._respond(conn, request)
                    continue
                if conn.reader.wants_continue():
                    # The body is within limits (Content-Length checked): ask for it.
                    conn.out += http11.CONTINUE_RESPONSE
                if conn.out and not self._write_out(conn):
                    return  # responses still queued are written before any read
                if not self._read_more(conn):
                    return
                continue
            # RESPOND
            if conn.call is not None and not self._pull_body(conn):
                return
            if conn.call is None and conn.closing is None and conn.buffer and len(conn.out) < FLUSH_THRESHOLD:
                # Batch answers while more pipelined requests are already buffered.
                self._begin_request(conn)
                continue
            if conn.out and not self._write_out(conn):
                return
            if conn.call is not None:
                continue
            if conn.closing is not None:
                self._close(conn, conn.closing)
                if conn.phase == LINGER:
                    continue
                return
            if conn.buffer:
                self._begin_request(conn)
                continue
            self._become_idle(conn)
            return

    def _read_more(self, conn):
        try:
            data = conn.sock.recv(READ_SIZE)
        except (BlockingIOError, InterruptedError):
            self._set_mask(conn, selectors.EVENT_READ)
            return False
        except OSError:
            self._close(conn, NEVER)
            return False
        if not data:
            # The client closed before a request or in the middle of one: it reads nothing.
            self._close(conn, NEVER)
            return False
        conn.buffer += data
        return True

    def _write_out(self, conn):
        """Writes what it can of conn.out; True once all of it is written."""
        try:
            sent = conn.sock.send(conn.out)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            self._close(conn, NEVER)
            return False
        if sent:
            del conn.out[:sent]
        if conn.out:
            # While a request is read, its own deadline bounds the write too; a response
            # gets request_timeout for each write that makes no progress.
            if conn.phase == RESPOND and (sent or conn.mask != selectors.EVENT_WRITE):
                conn.deadline = time.monotonic() + self.config.request_timeout
            self._set_mask(conn, selectors.EVENT_WRITE)
            return False
        if conn.responses_pending:
            self.requests += conn.responses_pending
            conn.responses_pending = 0
        if conn.phase == RESPOND:
            conn.deadline = None
        return True

    def _discard_input(self, conn):
        while True:
            try:
                data = conn.sock.recv(READ_SIZE)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                data = b""
            if not data:
                self._close(conn, NEVER)
                return

    # --- responses -----------------------------------------------------------------------

    def _connection_environ(self, conn):
        if conn.environ_base is None:
            base = {"prefork.worker_id": self.worker_id, "prefork.generation": self.generation,
                    "prefork.listener_index": conn.listener_index}
            try:
                if conn.sock.family in (socket.AF_INET, socket.AF_INET6):
                    peer = conn.sock.getpeername()
                    local = conn.sock.getsockname()
                    base.update(remote_addr=peer[0], remote_port=peer[1], server_name=local[0],
                                server_port=local[1])
            except OSError:
                pass
            conn.environ_base = base
        return conn.environ_base

    def _respond(self, conn, request):
        base = dict(self._connection_environ(conn))
        extra = {key: base.pop(key) for key in list(base) if key.startswith("prefork.")}
        environ = wsgi.build_environ(request, extra=extra, **base)
        call = wsgi.WSGICall(self.app, environ)
        conn.phase = RESPOND
        conn.request = request
        self.in_app = True
        try:
            call.start()
        except wsgi.AppError as error:
            log.error("WSGI application failed", exc_info=error.__cause__,
                      extra={"fields": {"method": request.method, "path": request.path}})
            conn.out += http11.error_response(500, request.method == "HEAD")
            conn.responses_pending += 1
            conn.closing = IF_BUFFERED if not request.keep_alive else IF_DATA_PENDING
            return
        finally:
            self.in_app = False
        headers = call.headers
        conn.no_body = http11.has_no_body(call.code, request.method)
        bodiless_status = call.code < 200 or call.code in (204, 304)
        keep_alive = request.keep_alive and not call.close_requested and not self.draining
        conn.chunked = False
        conn.remaining = call.length
        if call.length is None and not bodiless_status:
            if request.version >= 11:
                headers.append(("Transfer-Encoding", "chunked"))
                conn.chunked = True
            elif request.method != "HEAD":
                keep_alive = False  # HTTP/1.0 without a length: the end of the body is the close
        conn.keep_alive = keep_alive
        conn.out += http11.response_head(call.status, headers, http11.connection_header(keep_alive, request.version))
        conn.call = call
        # A client that asked to close sends nothing more: nothing to linger for.
        conn.closing = None if keep_alive else (IF_BUFFERED if not request.keep_alive else IF_DATA_PENDING)
        self._emit(conn, call.first)
        if call.exhausted:
            self._end_response(conn)

    def _emit(self, conn, data):
        if not data or conn.no_body:
            return
        if conn.remaining is not None:
            data = data[:conn.remaining]
            conn.remaining -= len(data)
            conn.out += data
        elif conn.chunked:
            conn.out += http11.chunk(data)
        else:
            conn.out += data

    def _end_response(self, conn):
        call, conn.call = conn.call, None
        call.close()
        if conn.chunked and not conn.no_body:
            conn.out += http11.LAST_CHUNK
        conn.responses_pending += 1
        if conn.remaining and not conn.no_body:
            log.error("the application sent less than its Content-Length",
                      extra={"fields": {"path": conn.request.path, "missing": conn.remaining}})
            conn.closing = NEVER  # the client would wait for the rest forever

    def _pull_body(self, conn):
        """Fills conn.out from the app's iterable up to FLUSH_THRESHOLD; False if the
        connection ended (the app failed in the middle of its body)."""
        call = conn.call
        self.in_app = True
        try:
            while len(conn.out) < FLUSH_THRESHOLD:
                data = call.next_chunk()
                if data is None:
                    self._end_response(conn)
                    return True
                self._emit(conn, data)
        except Exception:
            log.exception("WSGI application failed in its response body",
                          extra={"fields": {"method": conn.request.method, "path": conn.request.path}})
            conn.out.clear()
            conn.responses_pending = 0
            self._close(conn, NEVER)
            return False
        finally:
            self.in_app = False
        return True


def _data_pending(sock):
    try:
        return bool(sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT))
    except OSError:
        return False
