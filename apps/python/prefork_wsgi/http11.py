"""HTTP/1.1 and 1.0 on the wire: an incremental request reader with limits, and the bytes of
response heads. No sockets and no clock beyond the Date header: the worker feeds bytes in
and writes what comes out.

The rules follow the C++ HTTP apps (lib/src/http/serve.cpp): request line and header over
max_header_bytes -> 431; bad syntax -> 400; a body over max_body_bytes -> 413 (at once for
a Content-Length, per chunk for chunked); a Transfer-Encoding that does not end in chunked
-> 400; every error response says `Connection: close`. Responses always carry
`HTTP/1.1`, `Server: prefork` and `Date`.
"""

import re
import time

STATUS_TEXT = {
    100: "Continue",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    413: "Payload Too Large",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
}

CONTINUE_RESPONSE = b"HTTP/1.1 100 Continue\r\n\r\n"

# Longest chunk-size line (size, extensions, CRLF) accepted in a chunked body.
MAX_CHUNK_LINE = 4096

_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
_VERSION = re.compile(rb"HTTP/([0-9])\.([0-9])\Z")
_TARGET = re.compile(rb"[\x21-\x7e\x80-\xff]+\Z")
_FIELD_VALUE_BAD = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
_HEX = re.compile(rb"[0-9A-Fa-f]+\Z")
_DIGITS = re.compile(rb"[0-9]+\Z")


class HttpError(Exception):
    """A request that gets an error status and the end of its connection."""

    def __init__(self, status, detail=""):
        super().__init__("%d %s%s" % (status, STATUS_TEXT.get(status, ""), ": " + detail if detail else ""))
        self.status = status
        self.detail = detail


class Request:
    """One complete request. Header names keep their case; lookups ignore it."""

    __slots__ = ("method", "target", "path", "query", "version", "headers", "body", "keep_alive",
                 "content_length", "chunked")

    def __init__(self, method, target, version, headers):
        self.method = method  # str, as sent: "GET"
        self.target = target  # str (latin-1), as sent: "/sleep?ms=5"
        path, _, query = target.partition("?")
        self.path = path
        self.query = query
        self.version = version  # 10 or 11
        self.headers = headers  # [(name, value)] as str (latin-1), in order
        self.body = b""
        self.keep_alive = _wants_keep_alive(version, self.get_all("connection"))
        self.content_length = None
        self.chunked = False

    def get(self, name, default=None):
        """The field's values joined with ", " (RFC 9110 5.3), or `default`."""
        values = self.get_all(name)
        return ", ".join(values) if values else default

    def get_all(self, name):
        name = name.lower()
        return [value for key, value in self.headers if key.lower() == name]


def _tokens(values):
    return {token.strip().lower() for value in values for token in value.split(",") if token.strip()}


def _wants_keep_alive(version, connection_values):
    tokens = _tokens(connection_values)
    if "close" in tokens:
        return False
    return version >= 11 or "keep-alive" in tokens


class RequestReader:
    """Reads one request out of a connection's buffer, piece by piece.

    parse(buffer) consumes what it uses from the bytearray and returns the Request once it
    is complete, None while more is needed, and raises HttpError for a request that must
    be refused. Bytes after the request (pipelining) stay in the buffer.
    """

    def __init__(self, max_header_bytes, max_body_bytes):
        self.max_header_bytes = max_header_bytes
        self.max_body_bytes = max_body_bytes
        self.request = None  # set once the header is parsed
        self.got_some = False  # any byte of this request arrived
        self._body = bytearray()
        self._remaining = 0  # Content-Length bytes still to come
        self._chunk_state = "size"  # size, data, data_end, trailer
        self._chunk_left = 0
        self._continue_sent = False

    @property
    def header_done(self):
        return self.request is not None

    def wants_continue(self):
        """True once, when the header is done, the body is still to come and the client
        sent `Expect: 100-continue` with HTTP/1.1: the caller sends CONTINUE_RESPONSE."""
        if self._continue_sent or self.request is None or self.request.version < 11:
            return False
        expect = self.request.get("expect")
        if expect is None or expect.strip().lower() != "100-continue":
            return False
        self._continue_sent = True
        return True

    def parse(self, buffer):
        if buffer:
            self.got_some = True
        if self.request is None:
            if not self._parse_head(buffer):
                return None
        if self.request.chunked:
            done = self._parse_chunked(buffer)
        else:
            take = min(self._remaining, len(buffer))
            if take:
                self._body += buffer[:take]
                del buffer[:take]
                self._remaining -= take
            done = self._remaining == 0
        if not done:
            return None
        self.request.body = bytes(self._body)
        return self.request

    def _parse_head(self, buffer):
        # RFC 9112 2.2: empty lines before a request line are ignored.
        while buffer.startswith(b"\r\n"):
            del buffer[:2]
        end = buffer.find(b"\r\n\r\n", 0, self.max_header_bytes)
        if end < 0:
            if len(buffer) >= self.max_header_bytes:
                raise HttpError(431, "request line and header over %d bytes" % self.max_header_bytes)
            line_end = buffer.find(b"\r\n")
            if line_end >= 0:
                _parse_request_line(bytes(buffer[:line_end]))  # refuse garbage before the rest arrives
            elif b"\n" in buffer:
                raise HttpError(400, "bare LF in the request line")
            return False
        head = bytes(buffer[:end])
        del buffer[:end + 4]
        lines = head.split(b"\r\n")
        method, target, version = _parse_request_line(lines[0])
        headers = [_parse_field(line) for line in lines[1:]]
        request = Request(method, target, version, headers)
        self._framing(request)
        self.request = request
        return True

    def _framing(self, request):
        transfer = request.get_all("transfer-encoding")
        lengths = request.get_all("content-length")
        if transfer:
            codings = [c.strip().lower() for value in transfer for c in value.split(",") if c.strip()]
            # RFC 9112 6.3: a request whose Transfer-Encoding does not end in chunked has no
            # reliable length; with Content-Length as well it is a smuggling attempt.
            if not codings or codings[-1] != "chunked":
                raise HttpError(400, "Transfer-Encoding does not end in chunked")
            if lengths:
                raise HttpError(400, "both Transfer-Encoding and Content-Length")
            request.chunked = True
            return
        if lengths:
            values = {v.strip() for value in lengths for v in value.split(",")}
            if len(values) != 1:
                raise HttpError(400, "conflicting Content-Length values")
            (value,) = values
            if not _DIGITS.match(value.encode("latin-1")):
                raise HttpError(400, "bad Content-Length %r" % value)
            length = int(value)
            if length > self.max_body_bytes:
                raise HttpError(413, "Content-Length %d over %d" % (length, self.max_body_bytes))
            request.content_length = length
            self._remaining = length

    def _parse_chunked(self, buffer):
        while True:
            state = self._chunk_state
            if state == "size":
                end = buffer.find(b"\r\n", 0, MAX_CHUNK_LINE)
                if end < 0:
                    if len(buffer) >= MAX_CHUNK_LINE or b"\n" in buffer:
                        raise HttpError(400, "bad chunk-size line")
                    return False
                size_text = bytes(buffer[:end]).split(b";", 1)[0].strip(b" \t")
                if not _HEX.match(size_text) or len(size_text) > 16:
                    raise HttpError(400, "bad chunk size %r" % size_text)
                size = int(size_text, 16)
                del buffer[:end + 2]
                if size == 0:
                    self._chunk_state = "trailer"
                    continue
                if len(self._body) + size > self.max_body_bytes:
                    raise HttpError(413, "chunked body over %d bytes" % self.max_body_bytes)
                self._chunk_left = size
                self._chunk_state = "data"
            elif state == "data":
                take = min(self._chunk_left, len(buffer))
                if take == 0:
                    return False
                self._body += buffer[:take]
                del buffer[:take]
                self._chunk_left -= take
                if self._chunk_left == 0:
                    self._chunk_state = "data_end"
            elif state == "data_end":
                if len(buffer) < 2:
                    return False
                if buffer[:2] != b"\r\n":
                    raise HttpError(400, "chunk data not followed by CRLF")
                del buffer[:2]
                self._chunk_state = "size"
            else:  # trailer fields, ignored, then the empty line
                if buffer.startswith(b"\r\n"):
                    del buffer[:2]
                    return True
                end = buffer.find(b"\r\n\r\n", 0, self.max_header_bytes)
                if end < 0:
                    if len(buffer) >= self.max_header_bytes:
                        raise HttpError(431, "trailer over %d bytes" % self.max_header_bytes)
                    return False
                for line in bytes(buffer[:end]).split(b"\r\n"):
                    _parse_field(line)
                del buffer[:end + 4]
                return True


def _parse_request_line(line):
    parts = line.split(b" ")
    if len(parts) != 3:
        raise HttpError(400, "bad request line")
    method, target, version = parts
    if not _TOKEN.match(method):
        raise HttpError(400, "bad method")
    if not _TARGET.match(target):
        raise HttpError(400, "bad request target")
    match = _VERSION.match(version)
    if not match or match.group(1) != b"1":
        raise HttpError(400, "bad HTTP version")
    return method.decode("ascii"), target.decode("latin-1"), 11 if match.group(2) != b"0" else 10


def _parse_field(line):
    if line[:1] in (b" ", b"\t"):
        raise HttpError(400, "obsolete line folding")
    name, colon, value = line.partition(b":")
    if not colon or not _TOKEN.match(name):
        raise HttpError(400, "bad header field")
    value = value.strip(b" \t")
    if _FIELD_VALUE_BAD.search(value):
        raise HttpError(400, "control character in a header value")
    return name.decode("ascii"), value.decode("latin-1")


# --- responses -----------------------------------------------------------------------------

_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_date_cache = [None, ""]


def http_date(now=None):
    """RFC 9110 IMF-fixdate, formatted at most once a second: `Sun, 06 Nov 1994 08:49:37 GMT`."""
    second = int(time.time() if now is None else now)
    if _date_cache[0] != second:
        t = time.gmtime(second)
        _date_cache[0] = second
        _date_cache[1] = "%s, %02d %s %04d %02d:%02d:%02d GMT" % (
            _DAYS[t.tm_wday], t.tm_mday, _MONTHS[t.tm_mon - 1], t.tm_year, t.tm_hour, t.tm_min, t.tm_sec)
    return _date_cache[1]


def connection_header(keep_alive, version):
    """The Connection value a response carries: "close", "keep-alive" (HTTP/1.0 that keeps
    the connection) or None (HTTP/1.1 keep-alive, the default)."""
    if not keep_alive:
        return "close"
    return "keep-alive" if version < 11 else None


def response_head(status, headers, connection=None):
    """Status line and header block, ending with the empty line.

    `status` is "200 OK" (the WSGI form); `headers` are (name, value) str pairs. Server
    and Date are added unless present; `connection` (see connection_header) last.
    """
    names = {name.lower() for name, _ in headers}
    lines = ["HTTP/1.1 %s\r\n" % status]
    if "server" not in names:
        lines.append("Server: prefork\r\n")
    if "date" not in names:
        lines.append("Date: %s\r\n" % http_date())
    lines.extend("%s: %s\r\n" % (name, value) for name, value in headers)
    if connection is not None:
        lines.append("Connection: %s\r\n" % connection)
    lines.append("\r\n")
    return "".join(lines).encode("latin-1")


def error_response(status, head_only=False):
    """A complete plain-text error response that closes the connection (400, 408, 413,
    431, 500), as the C++ apps write it."""
    reason = STATUS_TEXT.get(status, "Error")
    body = (reason + "\n").encode("latin-1")
    head = response_head("%d %s" % (status, reason),
                         [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body)))],
                         "close")
    return head if head_only else head + body


def chunk(data):
    """One chunk of a chunked response body (never the last: see LAST_CHUNK)."""
    return b"%x\r\n%s\r\n" % (len(data), data)


LAST_CHUNK = b"0\r\n\r\n"


def status_code(status):
    """The number of a WSGI status string ("404 Not Found" -> 404); ValueError if bad."""
    code = status.split(" ", 1)[0]
    if len(code) != 3 or not code.isdigit():
        raise ValueError("bad status %r" % status)
    return int(code)


def has_no_body(status, method):
    """RFC 9110 6.4.1: 1xx, 204 and 304 responses, and every answer to HEAD."""
    return method == "HEAD" or status < 200 or status in (204, 304)
