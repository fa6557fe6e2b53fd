"""PEP 3333 in prefork_wsgi.wsgi: the environ, start_response, iterables and close()."""

import io
import sys
import unittest

from prefork_wsgi import http11, wsgi
from prefork_wsgi.wsgi import AppError, WSGICall


def request(data):
    buffer = bytearray(data)
    parsed = http11.RequestReader(8192, 1 << 20).parse(buffer)
    assert parsed is not None
    return parsed


class EnvironTest(unittest.TestCase):
    def test_cgi_and_wsgi_keys(self):
        req = request(b"POST /a%20b/c?q=1 HTTP/1.1\r\nHost: example.org:8080\r\nContent-Type: text/plain\r\n"
                      b"Content-Length: 5\r\nX-Thing: 1\r\nX-Thing: 2\r\nCookie: a=1\r\nCookie: b=2\r\n"
                      b"X_Sneaky: no\r\n\r\nhello")
        env = wsgi.build_environ(req, remote_addr="10.0.0.1", remote_port=4242, extra={"prefork.worker_id": 3})
        self.assertEqual(env["REQUEST_METHOD"], "POST")
        self.assertEqual(env["SCRIPT_NAME"], "")
        self.assertEqual(env["PATH_INFO"], "/a b/c")
        self.assertEqual(env["QUERY_STRING"], "q=1")
        self.assertEqual(env["RAW_URI"], "/a%20b/c?q=1")
        self.assertEqual(env["SERVER_NAME"], "example.org")
        self.assertEqual(env["SERVER_PORT"], "8080")
        self.assertEqual(env["SERVER_PROTOCOL"], "HTTP/1.1")
        self.assertEqual(env["CONTENT_TYPE"], "text/plain")
        self.assertEqual(env["CONTENT_LENGTH"], "5")
        self.assertEqual(env["HTTP_X_THING"], "1,2")
        self.assertEqual(env["HTTP_COOKIE"], "a=1; b=2")
        self.assertNotIn("HTTP_X_SNEAKY", env)
        self.assertNotIn("HTTP_CONTENT_TYPE", env)
        self.assertEqual(env["REMOTE_ADDR"], "10.0.0.1")
        self.assertEqual(env["REMOTE_PORT"], "4242")
        self.assertEqual(env["wsgi.version"], (1, 0))
        self.assertEqual(env["wsgi.url_scheme"], "http")
        self.assertEqual(env["wsgi.input"].read(), b"hello")
        self.assertTrue(env["wsgi.input_terminated"])
        self.assertFalse(env["wsgi.multithread"])
        self.assertTrue(env["wsgi.multiprocess"])
        self.assertFalse(env["wsgi.run_once"])
        self.assertEqual(env["prefork.worker_id"], 3)
        for key, value in env.items():
            if key.isupper():
                self.assertIsInstance(value, str, key)

    def test_defaults_without_host_and_latin1_paths(self):
        env = wsgi.build_environ(request(b"GET /caf%C3%A9 HTTP/1.0\r\n\r\n"))
        self.assertEqual(env["SERVER_NAME"], "localhost")
        self.assertEqual(env["SERVER_PORT"], "80")
        self.assertEqual(env["SERVER_PROTOCOL"], "HTTP/1.0")
        self.assertEqual(env["PATH_INFO"], "caf\u00c3\u00a9".join(["/", ""]))  # bytes as latin-1 (PEP 3333)
        self.assertEqual(env["PATH_INFO"].encode("latin-1").decode("utf-8"), "/caf\u00e9")
        self.assertNotIn("CONTENT_LENGTH", env)

    def test_absolute_form_and_ipv6_host(self):
        env = wsgi.build_environ(request(b"GET http://h:1/x?y HTTP/1.1\r\nHost: [::1]:9000\r\n\r\n"))
        self.assertEqual((env["PATH_INFO"], env["QUERY_STRING"]), ("/x", "y"))
        self.assertEqual((env["SERVER_NAME"], env["SERVER_PORT"]), ("[::1]", "9000"))

    def test_chunked_body_gets_a_content_length(self):
        env = wsgi.build_environ(request(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"))
        self.assertEqual(env["CONTENT_LENGTH"], "3")
        self.assertEqual(env["wsgi.input"].read(), b"abc")


class Closing:
    """An iterable that records its close()."""

    def __init__(self, chunks):
        self.chunks = chunks
        self.closed = False

    def __iter__(self):
        return iter(self.chunks)

    def close(self):
        self.closed = True


def environ():
    return wsgi.build_environ(request(b"GET / HTTP/1.1\r\n\r\n"), errors=io.StringIO())


def drain(call):
    chunks = [call.first]
    while True:
        chunk = call.next_chunk()
        if chunk is None:
            return b"".join(chunks)
        chunks.append(chunk)


class CallTest(unittest.TestCase):
    def test_list_body_gets_a_content_length(self):
        def app(env, start_response):
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"Hello, ", b"world!\n"]

        call = WSGICall(app, environ())
        call.start()
        self.assertEqual((call.status, call.code, call.length), ("200 OK", 200, 14))
        self.assertIn(("Content-Length", "14"), call.headers)
        self.assertEqual(drain(call), b"Hello, world!\n")

    def test_generator_body_and_close(self):
        body = Closing([b"", b"a", b"", b"bc"])

        def app(env, start_response):
            start_response("201 Created", [("X-A", "1")])
            return body

        call = WSGICall(app, environ())
        call.start()
        self.assertIsNone(call.length)
        self.assertEqual(call.first, b"a")
        self.assertEqual(drain(call), b"abc")
        call.close()
        call.close()
        self.assertTrue(body.closed)

    def test_start_response_inside_the_generator(self):
        def app(env, start_response):
            start_response("200 OK", [])
            yield b"late"

        call = WSGICall(app, environ())
        call.start()
        self.assertEqual((call.code, call.first), (200, b"late"))

    def test_write_callable(self):
        def app(env, start_response):
            write = start_response("200 OK", [])
            write(b"one ")
            return [b"two"]

        call = WSGICall(app, environ())
        call.start()
        self.assertEqual(drain(call), b"one two")

    def test_hop_by_hop_headers_are_dropped_and_close_is_honoured(self):
        def app(env, start_response):
            start_response("200 OK", [("Connection", "close"), ("Keep-Alive", "5"), ("X", "y")])
            return [b""]

        call = WSGICall(app, environ())
        call.start()
        self.assertTrue(call.close_requested)
        self.assertEqual(call.headers, [("X", "y"), ("Content-Length", "0")])

    def test_no_content_length_on_204(self):
        def app(env, start_response):
            start_response("204 No Content", [])
            return []

        call = WSGICall(app, environ())
        call.start()
        self.assertEqual(call.headers, [])

    def test_exc_info_replaces_the_head_before_it_is_sent(self):
        def app(env, start_response):
            start_response("200 OK", [])
            try:
                raise RuntimeError("oops")
            except RuntimeError:
                start_response("500 Internal Server Error", [("X-Error", "1")], sys.exc_info())
            return [b"failed"]

        call = WSGICall(app, environ())
        call.start()
        self.assertEqual(call.code, 500)

    def test_exc_info_after_the_head_reraises(self):
        call = WSGICall(None, environ())
        call.start_response("200 OK", [])
        call._head_sent = True
        with self.assertRaises(KeyError):
            try:
                raise KeyError("x")
            except KeyError:
                call.start_response("500 Internal Server Error", [], sys.exc_info())

    def test_second_start_response_without_exc_info_fails(self):
        def app(env, start_response):
            start_response("200 OK", [])
            start_response("200 OK", [])
            return []

        with self.assertRaises(AppError):
            WSGICall(app, environ()).start()

    def test_app_errors_before_the_head(self):
        body = Closing([b"x"])

        def no_start(env, start_response):
            return body

        def raises(env, start_response):
            raise ValueError("boom")

        def bad_status(env, start_response):
            start_response("OK", [])
            return []

        def bad_header(env, start_response):
            start_response("200 OK", [("X", "a\r\nInjected: 1")])
            return []

        def not_bytes(env, start_response):
            start_response("200 OK", [])
            return ["text"]

        for app in (no_start, raises, bad_status, bad_header, not_bytes):
            with self.subTest(app.__name__):
                with self.assertRaises(AppError):
                    WSGICall(app, environ()).start()
        self.assertTrue(body.closed)

    def test_errors_in_the_body_propagate(self):
        def app(env, start_response):
            start_response("200 OK", [])
            yield b"first"
            raise RuntimeError("late")

        call = WSGICall(app, environ())
        call.start()
        with self.assertRaises(RuntimeError):
            call.next_chunk()


class LoadAppTest(unittest.TestCase):
    def test_forms(self):
        self.assertTrue(callable(wsgi.load_app("tests.wsgi_apps:app")))
        self.assertTrue(callable(wsgi.load_app("tests.wsgi_apps")))  # `application`
        self.assertTrue(callable(wsgi.load_app("tests.wsgi_apps:make_app()")))
        for bad in ("", ":app", "tests.wsgi_apps:missing", "tests.wsgi_apps:NOT_CALLABLE", "no_such_module_x:app"):
            with self.subTest(bad):
                with self.assertRaises((ValueError, ImportError)):
                    wsgi.load_app(bad)

    def test_log_stream_logs_lines(self):
        with self.assertLogs("prefork_wsgi", "ERROR") as logs:
            stream = wsgi.LogStream()
            stream.write("one\ntw")
            stream.write("o\n")
        self.assertEqual([r.getMessage() for r in logs.records], ["one", "two"])


if __name__ == "__main__":
    unittest.main()
