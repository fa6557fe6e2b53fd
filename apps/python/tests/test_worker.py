"""The worker end to end: `python3 -m prefork_wsgi` as a subprocess, this test as its master
over a real socketpair(AF_UNIX, SOCK_SEQPACKET), clients on real Unix stream sockets."""

import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

from prefork_wsgi import channel

from .support import PYTHON_DIR, WAIT, Master, read_until_closed


class ServeTest(unittest.TestCase):
    def test_ready_is_first_then_heartbeats(self):
        master = Master(self, {"timeout": 0.4})  # heartbeats every 100 ms
        message = master.ready()
        self.assertEqual(message, {"type": "ready", "id": 7, "generation": 2, "pid": master.proc.pid})
        deadline = time.monotonic() + WAIT
        while len(master.heartbeats) < 3 and time.monotonic() < deadline:
            master.recv()
        self.assertGreaterEqual(len(master.heartbeats), 3)
        self.assertEqual(master.heartbeats[-1][1], {"type": "heartbeat", "open": 0, "served": 0})
        gaps = [b[0] - a[0] for a, b in zip(master.heartbeats, master.heartbeats[1:])]
        self.assertLess(max(gaps), 0.5, gaps)

    def test_acknowledges_without_reading_then_serves(self):
        master = Master(self)
        master.ready()
        client = master.connect(index=0, wait_ack=False)  # no request yet: the acknowledgement must not wait
        self.assertEqual(master.expect_progress(received=1)[0], (1, 0, 0))
        self.assertEqual(master.sent, [])  # our copy is released on the acknowledgement
        response = client.request("GET", "/")
        self.assertEqual(response.status, 200)
        self.assertEqual(response.body, b"Hello, world!\n")
        self.assertEqual(response.header("server"), "prefork")
        self.assertRegex(response.header("date"), r"GMT$")
        self.assertEqual(response.header("content-length"), "14")
        self.assertIsNone(response.header("connection"))  # HTTP/1.1 keep-alive
        client.close()
        self.assertEqual(master.expect_progress(closed=1)[0], (1, 1, 1))

    def test_progress_is_sent_before_the_response(self):
        master = Master(self)
        master.ready()
        for attempt in range(5):
            client = master.connect(data=b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                                    wait_ack=False)
            response = client.response()
            self.assertEqual(response.body, b"Hello, world!\n")
            # The worker sent the acknowledgement before it read the request: it is in the
            # channel already when the response is in the client's socket.
            frames = []
            while True:
                frame = master.recv_now()
                if frame is None:
                    break
                frames.append(frame)
            acks = [channel.decode_progress(f.payload) for f in frames if f.type == channel.PROGRESS]
            self.assertTrue(any(received == attempt + 1 for received, _, _ in acks), (attempt, frames))

    def test_real_unix_socket_and_environ(self):
        master = Master(self)
        master.ready()
        directory = tempfile.mkdtemp()
        self.addCleanup(os.rmdir, directory)
        path = os.path.join(directory, "app.sock")
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.addCleanup(listener.close)
        listener.bind(path)
        self.addCleanup(os.unlink, path)
        listener.listen(8)
        client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.addCleanup(client.close)
        client.settimeout(WAIT)
        client.connect(path)
        accepted, _ = listener.accept()
        master.handoff([accepted.fileno()], [1])
        accepted.close()
        master.wait_acknowledged()
        client.sendall(b"GET /environ?x=1 HTTP/1.0\r\n\r\n")
        data = read_until_closed(client)
        head, body = data.split(b"\r\n\r\n", 1)
        self.assertIn(b"\r\nConnection: close", head)  # HTTP/1.0 without keep-alive
        environ = json.loads(body)
        self.assertEqual(environ["PATH_INFO"], "/environ")
        self.assertEqual(environ["QUERY_STRING"], "x=1")
        self.assertEqual(environ["SERVER_PROTOCOL"], "HTTP/1.0")
        self.assertEqual(environ["prefork.listener_index"], 1)
        self.assertEqual(environ["prefork.worker_id"], 7)
        self.assertEqual(environ["prefork.generation"], 2)
        self.assertEqual(environ["REMOTE_ADDR"], "")
        master.expect_progress(received=1, closed=1, requests=1)

    def test_keep_alive_pipelining_http10_and_head(self):
        master = Master(self)
        master.ready()
        client = master.connect()
        client.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\nPOST /echo HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc"
                    b"GET /stream?n=2 HTTP/1.1\r\n\r\n")
        first, second, third = client.response(), client.response(), client.response()
        self.assertEqual(first.body, b"Hello, world!\n")
        self.assertEqual(second.body, b"abc")
        self.assertEqual(third.header("transfer-encoding"), "chunked")
        self.assertEqual(third.body, b"chunk 0\nchunk 1\n")
        head = client.request("HEAD", "/")
        self.assertEqual((head.status, head.header("content-length"), head.body), (200, "14", b""))
        ten = client.request("GET", "/", headers=[("Connection", "keep-alive")], version="HTTP/1.0")
        self.assertEqual(ten.header("connection"), "keep-alive")
        self.assertEqual(ten.body, b"Hello, world!\n")
        streamed = client.request("GET", "/stream?n=1", headers=[("Connection", "keep-alive")], version="HTTP/1.0")
        self.assertEqual(streamed.header("connection"), "close")  # no length: the close ends the body
        self.assertEqual(streamed.body, b"chunk 0\n")
        self.assertTrue(client.at_eof())
        master.expect_progress(received=1, closed=1, requests=6)

    def test_expect_continue_and_chunked_request(self):
        master = Master(self)
        master.ready()
        client = master.connect()
        client.send(b"POST /echo HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
        interim = client.response()
        self.assertEqual(interim.status, 100)
        client.send(b"hello")
        self.assertEqual(client.response().body, b"hello")
        client.send(b"POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
        self.assertEqual(client.response().body, b"abcde")

    def test_app_that_asks_to_close(self):
        master = Master(self)
        master.ready()
        client = master.connect()
        response = client.request("GET", "/close")
        self.assertEqual((response.header("connection"), response.body), ("close", b"bye\n"))
        self.assertTrue(client.at_eof())


class ErrorTest(unittest.TestCase):
    def setUp(self):
        self.master = Master(self, {"keepalive": 5, "http": {"max_header_bytes": 1024, "max_body_bytes": 100,
                                                             "request_timeout": 0.5}})
        self.master.ready()

    def check_refused(self, data, status):
        client = self.master.connect(data=data)
        response = client.response()
        self.assertEqual(response.status, status, response)
        self.assertEqual(response.header("connection"), "close")
        self.assertEqual(response.header("content-type"), "text/plain; charset=utf-8")
        self.assertTrue(client.at_eof())
        return response

    def test_400_bad_syntax(self):
        self.assertEqual(self.check_refused(b"BLAH\r\n\r\n", 400).body, b"Bad Request\n")

    def test_431_header_too_large(self):
        self.check_refused(b"GET / HTTP/1.1\r\nX: " + b"a" * 2000 + b"\r\n\r\n", 431)

    def test_413_body_too_large(self):
        # Refused from its Content-Length: the client still sending its body is read and
        # discarded (linger), so the 413 is not destroyed by a reset.
        client = self.master.connect(data=b"POST /echo HTTP/1.1\r\nContent-Length: 5000\r\n\r\n" + b"x" * 3000)
        response = client.response()
        self.assertEqual((response.status, response.header("connection")), (413, "close"))
        client.send(b"x" * 2000)
        self.assertTrue(client.at_eof())

    def test_408_partial_request_and_silent_connection(self):
        client = self.master.connect(data=b"GET / HTTP/1.1\r\nHost:")
        started = time.monotonic()
        response = client.response()
        self.assertEqual(response.status, 408)
        self.assertGreaterEqual(time.monotonic() - started, 0.3)
        silent = self.master.connect()
        self.assertTrue(silent.at_eof())  # no byte arrived: closed without an answer
        self.assertEqual(silent.buffer, b"")

    def test_500_and_the_worker_survives(self):
        client = self.master.connect()
        response = client.request("GET", "/boom")
        self.assertEqual((response.status, response.header("connection")), (500, "close"))
        self.assertEqual(response.body, b"Internal Server Error\n")
        self.assertTrue(client.at_eof())
        self.assertEqual(self.master.connect().request("GET", "/").status, 200)
        self.assertIn("WSGI application failed", self.master.log())
        self.assertIn("boom on purpose", self.master.log())
        late = self.master.connect()
        late.send(b"GET /boom-late HTTP/1.1\r\n\r\n")
        self.assertTrue(late.at_eof())  # the head went out: the connection can only be cut
        self.assertEqual(self.master.connect().request("GET", "/").status, 200)
        self.assertIsNone(self.master.proc.poll())


class DrainTest(unittest.TestCase):
    def test_term_hands_idle_connections_back_and_closes_the_rest(self):
        master = Master(self)
        master.ready()
        idle = master.connect(index=3)
        self.assertEqual(idle.request("GET", "/").status, 200)  # now idle, keep-alive
        waiting = master.connect(index=0)  # handed off, its first request not sent yet
        master.signal(signal.SIGTERM)
        message, _ = master.expect_control("draining")
        frame, skipped = master.expect(lambda f: f.type == channel.HANDBACK, "handback")
        self.assertEqual(channel.decode_indices(frame.payload), [3])
        self.assertEqual(len(frame.fds), 1)
        # The progress that counts it as closed comes after the handback frame.
        self.assertFalse(any(f.type == channel.PROGRESS and channel.decode_progress(f.payload)[1] >= 1
                             for f in skipped))
        master.expect_progress(received=2, closed=1)
        # The client saw no reset and no EOF: the connection is alive, now in our hands.
        handed = socket.socket(fileno=frame.fds[0])
        self.addCleanup(handed.close)
        idle.sock.setblocking(False)
        with self.assertRaises(BlockingIOError):
            idle.sock.recv(1)
        handed.sendall(b"still here")
        idle.sock.settimeout(WAIT)
        self.assertEqual(idle.sock.recv(100), b"still here")
        # The request in flight is answered, with Connection: close.
        response = waiting.request("GET", "/")
        self.assertEqual((response.status, response.header("connection")), (200, "close"))
        self.assertTrue(waiting.at_eof())
        self.assertEqual(master.wait_exit(), 0)
        master.read_to_eof()
        self.assertEqual(master.progress, (2, 2, 2))
        self.assertIn("worker exiting", master.log())

    def test_connection_that_becomes_idle_during_a_drain_goes_back(self):
        # As in the C++ worker: TERM during an app call is handled once the call returned
        # and its keep-alive response went out; the connection, idle then, goes back.
        master = Master(self)
        master.ready()
        client = master.connect(index=5)
        client.send(b"GET /sleep?ms=400 HTTP/1.1\r\n\r\n")
        time.sleep(0.1)  # the app is sleeping now
        master.signal(signal.SIGTERM)
        response = client.response()
        self.assertEqual(response.body, b"slept\n")
        frame, _ = master.expect(lambda f: f.type == channel.HANDBACK, "handback")
        self.assertEqual(channel.decode_indices(frame.payload), [5])
        frame.close_fds()
        self.assertEqual(master.wait_exit(), 0)

    def test_master_drain_message_serves_the_last_request(self):
        master = Master(self)
        master.ready()
        client = master.connect()
        self.assertIsNone(client.request("GET", "/").header("connection"))
        master.send_control("drain")
        master.expect_control("draining")
        time.sleep(0.2)
        self.assertIsNone(master.proc.poll())  # the idle connection is kept, not handed back
        response = client.request("GET", "/")
        self.assertEqual((response.status, response.header("connection")), (200, "close"))
        self.assertTrue(client.at_eof())
        self.assertEqual(master.wait_exit(), 0)
        frames = master.read_to_eof()
        self.assertEqual(master.progress, (1, 1, 2))
        self.assertFalse(any(f.type == channel.HANDBACK for f in frames))

    def test_drain_with_nothing_open_exits_at_once(self):
        master = Master(self)
        master.ready()
        master.signal(signal.SIGTERM)
        master.expect_control("draining")
        self.assertEqual(master.wait_exit(), 0)

    def test_graceful_timeout(self):
        master = Master(self, {"graceful_timeout": 0.3})
        master.ready()
        client = master.connect(data=b"GET / HTTP/1.1\r\n")  # never completes (request_timeout 5)
        started = time.monotonic()
        master.signal(signal.SIGTERM)
        self.assertEqual(master.wait_exit(), 0)
        self.assertLess(time.monotonic() - started, 3)
        self.assertIn("graceful timeout", master.log())
        client.close()


class LifeTest(unittest.TestCase):
    def test_channel_eof_exits(self):
        master = Master(self)
        master.ready()
        master.sock.shutdown(socket.SHUT_RDWR)
        self.assertEqual(master.wait_exit(), 0)
        self.assertIn("master went away", master.log())

    def test_int_and_quit_exit_now_with_final_counters(self):
        for sig in (signal.SIGINT, signal.SIGQUIT):
            with self.subTest(sig=sig):
                master = Master(self)
                master.ready()
                client = master.connect()
                self.assertEqual(client.request("GET", "/").status, 200)
                master.signal(sig)
                self.assertEqual(master.wait_exit(), 0)
                master.read_to_eof()
                self.assertEqual(master.progress[0::2], (1, 1))

    def test_int_during_a_long_app_call(self):
        master = Master(self)
        master.ready()
        client = master.connect(data=b"GET /sleep?ms=20000 HTTP/1.1\r\n\r\n")
        time.sleep(0.2)
        started = time.monotonic()
        master.signal(signal.SIGINT)
        self.assertEqual(master.wait_exit(), 0)
        self.assertLess(time.monotonic() - started, 3)
        client.close()

    def test_connections_behind_an_app_call_stay_unacknowledged(self):
        # One handoff, two requests: the first blocks the app. The second is acknowledged
        # only when the worker starts on it, so while the call runs the master still owns it,
        # unread, and would give it to another worker if this one died.
        master = Master(self)
        master.ready()
        slow_client, slow = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        waiting_client, waiting = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        request = b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n"
        slow_client.sendall(b"GET /sleep?ms=20000 HTTP/1.1\r\n\r\n")
        waiting_client.sendall(request)
        master.handoff([slow.fileno(), waiting.fileno()])
        slow.close()
        waiting.close()
        self.assertEqual(master.expect_progress(received=1)[0], (1, 0, 0))
        time.sleep(0.3)  # the worker is in the app call now
        while master.recv_now() is not None:
            pass
        self.assertEqual(master.progress[0], 1)
        self.assertEqual(len(master.sent), 1)  # the master's copy of the waiting connection
        with socket.socket(fileno=os.dup(master.sent[0])) as copy:
            self.assertEqual(copy.recv(len(request) + 1, socket.MSG_PEEK | socket.MSG_DONTWAIT), request)  # unread
        slow_client.close()
        waiting_client.close()

    def test_hup_and_usr1_are_ignored(self):
        master = Master(self)
        master.ready()
        for sig in (signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2, signal.SIGTTIN, signal.SIGTTOU):
            master.signal(sig)
        time.sleep(0.2)
        self.assertIsNone(master.proc.poll())
        self.assertEqual(master.connect().request("GET", "/").status, 200)

    def test_a_blocking_app_stops_heartbeats(self):
        # Documented: heartbeats come from the loop, so an app call that blocks past
        # `timeout` gets the worker killed by the master.
        master = Master(self, {"timeout": 0.4})
        master.ready()
        client = master.connect(data=b"GET /sleep?ms=800 HTTP/1.1\r\n\r\n")
        response = client.response()
        self.assertEqual(response.body, b"slept\n")
        master.expect_control("heartbeat")  # the loop beats again once the call returned
        master.expect_control("heartbeat")
        gaps = [b[0] - a[0] for a, b in zip(master.heartbeats, master.heartbeats[1:])]
        self.assertGreater(max(gaps), 0.6, gaps)

    def test_malformed_frames_from_the_master_are_logged_and_skipped(self):
        master = Master(self)
        master.ready()
        master.sock.send(b"\x03\x02\x00\x00\x02\x00\x00\x00{}")  # version 2
        master.sock.send(channel.encode_frame(channel.CONTROL, b'{"type":"bogus"}'))
        master.sock.send(channel.encode_frame(channel.PROGRESS, channel.encode_progress(1, 2, 3)))
        self.assertEqual(master.connect().request("GET", "/").status, 200)
        log = master.log()
        self.assertIn("channel receive failed", log)
        self.assertIn("unexpected control message from master", log)
        self.assertIn("unexpected frame from master", log)

    def test_keepalive_idle_timeout(self):
        master = Master(self, {"keepalive": 0.2})
        master.ready()
        client = master.connect()
        self.assertEqual(client.request("GET", "/").status, 200)
        started = time.monotonic()
        self.assertTrue(client.at_eof())
        self.assertLess(time.monotonic() - started, 2)
        master.expect_progress(closed=1)

    def test_many_connections_in_one_handoff(self):
        master = Master(self)
        master.ready()
        pairs = [socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM) for _ in range(32)]
        for client, _ in pairs:
            client.settimeout(WAIT)
            client.sendall(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n")
        master.handoff([server.fileno() for _, server in pairs], list(range(32)))
        for _, server in pairs:
            server.close()
        master.wait_acknowledged()
        for client, _ in pairs:
            data = read_until_closed(client)
            client.close()
            self.assertTrue(data.endswith(b"Hello, world!\n"))
        master.expect_progress(received=32, closed=32, requests=32)

    def test_json_log_lines(self):
        master = Master(self, {"log": {"format": "json", "level": "info"}})
        master.ready()
        master.signal(signal.SIGTERM)
        self.assertEqual(master.wait_exit(), 0)
        lines = [json.loads(line) for line in master.log().splitlines()]
        self.assertTrue(lines)
        for line in lines:
            self.assertEqual((line["role"], line["worker"], line["pid"]), ("worker", 7, master.proc.pid))
            self.assertRegex(line["ts"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
            self.assertIn(line["level"], ("info", "warning", "error"))
        self.assertIn("worker draining", [line["msg"] for line in lines])

    def test_text_log_lines(self):
        master = Master(self, {"log": {"format": "text", "level": "info"}})
        master.ready()
        master.signal(signal.SIGTERM)
        master.wait_exit()
        self.assertRegex(master.log(), r"(?m)^\d{4}-\d\d-\d\dT[\d:.]+Z info    worker\.7\[%d\] worker draining open=0$"
                         % master.proc.pid)


class ExamplesTest(unittest.TestCase):
    """The shipped examples, served as preforkd would run them."""

    def serve_hello(self, app):
        examples = os.path.join(PYTHON_DIR, "examples")
        master = Master(self, app=app, env={"PYTHONPATH": os.pathsep.join([PYTHON_DIR, examples])})
        master.ready()
        client = master.connect()
        response = client.request("GET", "/")
        self.assertEqual((response.status, response.body), (200, b"Hello, world!\n"))
        self.assertEqual(client.request("GET", "/nope").status, 404)
        self.assertEqual(client.request("HEAD", "/").body, b"")
        return master

    def test_hello_wsgi(self):
        master = self.serve_hello("hello_wsgi:app")
        response = master.connect().request("POST", "/", body=b"x")
        self.assertEqual((response.status, response.header("allow")), (405, "GET, HEAD"))

    @unittest.skipUnless(importlib.util.find_spec("flask"), "Flask is not installed (apt-get install python3-flask)")
    def test_hello_flask(self):
        self.serve_hello("hello_flask:app")


class StartupTest(unittest.TestCase):
    def run_main(self, args, env):
        environment = dict(os.environ, PYTHONPATH=PYTHON_DIR)
        for key in list(environment):
            if key.startswith("PREFORK_"):
                del environment[key]
        environment.update(env)
        return subprocess.run([sys.executable, "-m", "prefork_wsgi", *args], env=environment, cwd=PYTHON_DIR,
                              stdin=subprocess.DEVNULL, capture_output=True, timeout=WAIT, start_new_session=True)

    def test_not_under_preforkd(self):
        result = self.run_main(["tests.wsgi_apps:app"], {})
        self.assertEqual(result.returncode, 2)
        self.assertIn(b"PREFORK_PROTOCOL", result.stderr)

    def test_other_protocol_version(self):
        result = self.run_main(["tests.wsgi_apps:app"], {"PREFORK_PROTOCOL": "2"})
        self.assertEqual(result.returncode, 2)

    def test_master_signals_while_the_app_loads_are_ignored(self):
        # HUP, USR1, USR2, TTIN and TTOU go to the whole group at times; a worker still
        # importing its app must survive them (their default would kill or stop it).
        mark = os.path.join(tempfile.mkdtemp(), "importing")
        self.addCleanup(shutil.rmtree, os.path.dirname(mark))
        master = Master(self, app="tests.slow_app:app", env={"SLOW_APP_MARK": mark})
        deadline = time.monotonic() + WAIT
        while not os.path.exists(mark):  # the app's import started: the worker set up its signals
            self.assertLess(time.monotonic(), deadline, "the app's import did not start")
            time.sleep(0.01)
        for sig in (signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2, signal.SIGTTIN, signal.SIGTTOU):
            master.signal(sig)
        master.ready()
        self.assertIsNone(master.proc.poll())

    def test_app_that_cannot_be_loaded(self):
        master = Master(self, app="tests.wsgi_apps:missing")
        self.assertEqual(master.wait_exit(), 1)
        self.assertIn("cannot load the application", master.log())
        with self.assertRaises(channel.ChannelClosed):  # never ready
            master.recv_now()

    def test_channel_that_is_not_seqpacket(self):
        left, right = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self.addCleanup(left.close)
        self.addCleanup(right.close)
        environment = dict(os.environ, PYTHONPATH=PYTHON_DIR, PREFORK_PROTOCOL="1",
                           PREFORK_CHANNEL_FD=str(right.fileno()), PREFORK_CONFIG="{}")
        result = subprocess.run([sys.executable, "-m", "prefork_wsgi", "tests.wsgi_apps:app"], env=environment,
                                cwd=PYTHON_DIR, pass_fds=[right.fileno()], stdin=subprocess.DEVNULL,
                                capture_output=True, timeout=WAIT, start_new_session=True)
        self.assertEqual(result.returncode, 1)
        self.assertIn(b"no channel to the master", result.stderr)


if __name__ == "__main__":
    unittest.main()
