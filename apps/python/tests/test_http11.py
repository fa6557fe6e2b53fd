"""The HTTP/1.x request reader and the response bytes of prefork_wsgi.http11."""

import unittest

from prefork_wsgi import http11
from prefork_wsgi.http11 import HttpError, RequestReader


def read(data, max_header_bytes=8192, max_body_bytes=1 << 20):
    """Feeds `data` at once; returns (request or None, what is left in the buffer)."""
    buffer = bytearray(data)
    request = RequestReader(max_header_bytes, max_body_bytes).parse(buffer)
    return request, bytes(buffer)


def status_of(data, **limits):
    """The status of the HttpError that `data` must raise."""
    try:
        read(data, **limits)
    except HttpError as error:
        return error.status
    raise AssertionError("no HttpError for %r" % (data,))


class RequestTest(unittest.TestCase):
    def test_simple_get(self):
        request, rest = read(b"GET /a/b?x=1&y=2 HTTP/1.1\r\nHost: example\r\nX-Two: a\r\nx-two: b\r\n\r\n")
        self.assertEqual((request.method, request.path, request.query, request.version), ("GET", "/a/b", "x=1&y=2", 11))
        self.assertEqual(request.get("HOST"), "example")
        self.assertEqual(request.get("x-two"), "a, b")
        self.assertEqual(request.body, b"")
        self.assertTrue(request.keep_alive)
        self.assertEqual(rest, b"")

    def test_keep_alive_rules(self):
        cases = [
            (b"GET / HTTP/1.1\r\n\r\n", True),
            (b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n", False),
            (b"GET / HTTP/1.1\r\nConnection: Upgrade, CLOSE\r\n\r\n", False),
            (b"GET / HTTP/1.0\r\n\r\n", False),
            (b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", True),
            (b"GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n", False),
        ]
        for data, keep in cases:
            with self.subTest(data):
                self.assertEqual(read(data)[0].keep_alive, keep)
        self.assertEqual(read(b"GET / HTTP/1.0\r\n\r\n")[0].version, 10)

    def test_pipelining_leaves_the_next_request_in_the_buffer(self):
        data = b"GET /1 HTTP/1.1\r\n\r\nPOST /2 HTTP/1.1\r\nContent-Length: 3\r\n\r\nabcGET /3 HTTP/1.1\r\n\r\n"
        buffer = bytearray(data)
        paths = []
        while buffer:
            request = RequestReader(8192, 1024).parse(buffer)
            paths.append((request.path, request.body))
        self.assertEqual(paths, [("/1", b""), ("/2", b"abc"), ("/3", b"")])

    def test_byte_by_byte(self):
        data = b"POST /p HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello"
        reader = RequestReader(8192, 1024)
        buffer = bytearray()
        results = []
        for byte in data:
            buffer.append(byte)
            results.append(reader.parse(buffer))
        self.assertTrue(all(r is None for r in results[:-1]))
        self.assertEqual(results[-1].body, b"hello")
        self.assertTrue(reader.got_some)

    def test_chunked_body(self):
        data = (b"POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                b"5;ext=1\r\nhello\r\n1\r\n \r\nA\r\n0123456789\r\n0\r\nTrailer: x\r\n\r\nGET / HTTP/1.1\r\n\r\n")
        request, rest = read(data)
        self.assertEqual(request.body, b"hello 0123456789")
        self.assertTrue(request.chunked)
        self.assertEqual(rest, b"GET / HTTP/1.1\r\n\r\n")
        # And in pieces.
        reader, buffer = RequestReader(8192, 1024), bytearray()
        for i in range(0, len(data), 3):
            buffer += data[i:i + 3]
            request = reader.parse(buffer)
            if request:
                break
        self.assertEqual(request.body, b"hello 0123456789")

    def test_bad_requests_are_400(self):
        bad = [
            b"GARBAGE\r\n\r\n",
            b"GET /\r\n\r\n",
            b"GET / HTTP/1.1 extra\r\n\r\n",
            b"GET  / HTTP/1.1\r\n\r\n",
            b"G(T / HTTP/1.1\r\n\r\n",
            b"GET / HTTP/2.0\r\n\r\n",
            b"GET / HTTX/1.1\r\n\r\n",
            b"GET / HTTP/1.1\r\nNo colon\r\n\r\n",
            b"GET / HTTP/1.1\r\nBad Name: x\r\n\r\n",
            b"GET / HTTP/1.1\r\nX: a\r\n folded\r\n\r\n",
            b"GET / HTTP/1.1\r\nX: a\x01b\r\n\r\n",
            b"GET / HTTP/1.1\nHost: x\n\n",
            b"POST / HTTP/1.1\r\nContent-Length: abc\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcXY",
        ]
        for data in bad:
            with self.subTest(data):
                self.assertEqual(status_of(data), 400)

    def test_garbage_is_refused_before_the_header_ends(self):
        self.assertEqual(status_of(b"NOT AN HTTP REQUEST LINE\r\nHost: x"), 400)

    def test_header_limit_is_431(self):
        big = b"GET / HTTP/1.1\r\nX: " + b"a" * 200 + b"\r\n\r\n"
        self.assertEqual(status_of(big, max_header_bytes=100), 431)
        # Incomplete but already over the limit: no need to wait for the rest.
        self.assertEqual(status_of(big[:150], max_header_bytes=100), 431)
        # Exactly at the limit (request line, fields and the empty line) is accepted.
        self.assertIsNotNone(read(big, max_header_bytes=len(big))[0])
        self.assertEqual(status_of(big, max_header_bytes=len(big) - 1), 431)

    def test_body_limit_is_413(self):
        self.assertEqual(status_of(b"POST / HTTP/1.1\r\nContent-Length: 11\r\n\r\n", max_body_bytes=10), 413)
        self.assertIsNotNone(read(b"POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\n0123456789", max_body_bytes=10)[0])
        chunked = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nabcdef\r\n5\r\n"
        self.assertEqual(status_of(chunked, max_body_bytes=10), 413)

    def test_expect_continue(self):
        buffer = bytearray(b"POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n")
        reader = RequestReader(8192, 1024)
        self.assertIsNone(reader.parse(buffer))
        self.assertTrue(reader.wants_continue())
        self.assertFalse(reader.wants_continue())  # once
        buffer += b"abc"
        self.assertEqual(reader.parse(buffer).body, b"abc")
        # Not for HTTP/1.0.
        reader = RequestReader(8192, 1024)
        reader.parse(bytearray(b"POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n"))
        self.assertFalse(reader.wants_continue())

    def test_got_some(self):
        reader = RequestReader(8192, 1024)
        self.assertIsNone(reader.parse(bytearray()))
        self.assertFalse(reader.got_some)
        self.assertIsNone(reader.parse(bytearray(b"GE")))
        self.assertTrue(reader.got_some)

    def test_leading_empty_lines_are_skipped(self):
        request, _ = read(b"\r\n\r\nGET / HTTP/1.1\r\n\r\n")
        self.assertEqual(request.path, "/")


class ResponseTest(unittest.TestCase):
    def test_date_format(self):
        self.assertEqual(http11.http_date(784111777), "Sun, 06 Nov 1994 08:49:37 GMT")
        self.assertRegex(http11.http_date(), r"^[A-Z][a-z]{2}, \d\d [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d GMT$")

    def test_head_adds_server_date_and_connection(self):
        head = http11.response_head("200 OK", [("Content-Length", "2")], "close").decode()
        self.assertTrue(head.startswith("HTTP/1.1 200 OK\r\nServer: prefork\r\nDate: "))
        self.assertTrue(head.endswith("Content-Length: 2\r\nConnection: close\r\n\r\n"))
        head = http11.response_head("200 OK", [("Server", "mine"), ("Date", "x")]).decode()
        self.assertEqual(head, "HTTP/1.1 200 OK\r\nServer: mine\r\nDate: x\r\n\r\n")

    def test_connection_header(self):
        self.assertEqual(http11.connection_header(False, 11), "close")
        self.assertEqual(http11.connection_header(True, 10), "keep-alive")
        self.assertIsNone(http11.connection_header(True, 11))

    def test_error_responses_match_the_cpp_apps(self):
        for status, reason in ((400, "Bad Request"), (408, "Request Timeout"), (413, "Payload Too Large"),
                               (431, "Request Header Fields Too Large"), (500, "Internal Server Error")):
            with self.subTest(status):
                text = http11.error_response(status).decode()
                head, body = text.split("\r\n\r\n", 1)
                self.assertTrue(head.startswith("HTTP/1.1 %d %s\r\n" % (status, reason)))
                self.assertIn("\r\nContent-Type: text/plain; charset=utf-8\r\n", head + "\r\n")
                self.assertIn("\r\nConnection: close", head)
                self.assertEqual(body, reason + "\n")
                self.assertIn("\r\nContent-Length: %d" % len(body), head)
                self.assertTrue(http11.error_response(status, head_only=True).endswith(b"\r\n\r\n"))

    def test_chunks(self):
        self.assertEqual(http11.chunk(b"hello world, 16b"), b"10\r\nhello world, 16b\r\n")
        self.assertEqual(http11.LAST_CHUNK, b"0\r\n\r\n")

    def test_status_code_and_bodiless(self):
        self.assertEqual(http11.status_code("404 Not Found"), 404)
        with self.assertRaises(ValueError):
            http11.status_code("OK")
        self.assertTrue(http11.has_no_body(204, "GET"))
        self.assertTrue(http11.has_no_body(200, "HEAD"))
        self.assertFalse(http11.has_no_body(200, "GET"))


if __name__ == "__main__":
    unittest.main()
