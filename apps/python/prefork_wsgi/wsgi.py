"""PEP 3333 for one request: the environ, start_response, the app's iterable (pulled chunk by
chunk), its close(). Knows nothing of sockets or of the event loop.
"""

import io
import logging
from urllib.parse import unquote_to_bytes

from . import http11

log = logging.getLogger("prefork_wsgi")

# Hop-by-hop fields are the server's business (PEP 3333): an app's are dropped, except
# that `Connection: close` is honoured.
HOP_BY_HOP = frozenset(("connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te",
                        "trailers", "transfer-encoding", "upgrade"))


class LogStream(io.TextIOBase):
    """wsgi.errors: each line written becomes one error line of the worker's log."""

    def __init__(self, logger=log):
        super().__init__()
        self._logger = logger
        self._pending = ""

    def writable(self):
        return True

    def write(self, text):
        self._pending += text
        while "\n" in self._pending:
            line, self._pending = self._pending.split("\n", 1)
            self._logger.error(line)
        return len(text)

    def writelines(self, lines):
        for line in lines:
            self.write(line)

    def flush(self):
        if self._pending:
            self._logger.error(self._pending)
            self._pending = ""


def build_environ(request, *, server_name="localhost", server_port="80", remote_addr="", remote_port="",
                  url_scheme="http", errors=None, extra=None):
    """The environ of `request` (an http11.Request whose body is complete)."""
    target = request.target
    if "://" in target.split("?", 1)[0]:  # absolute-form: keep the path and query only
        after_scheme = target.split("://", 1)[1]
        slash = after_scheme.find("/")
        target = after_scheme[slash:] if slash >= 0 else "/"
    path, _, query = target.partition("?")
    host_header = request.get("host")
    if host_header:
        host, _, port = host_header.rpartition(":") if host_header.rfind(":") > host_header.rfind("]") else (
            host_header, "", "")
        server_name = host or server_name
        if port.isdigit():
            server_port = port
    environ = {
        "REQUEST_METHOD": request.method,
        "SCRIPT_NAME": "",
        "PATH_INFO": unquote_to_bytes(path).decode("latin-1"),
        "QUERY_STRING": query,
        "RAW_URI": request.target,
        "REQUEST_URI": request.target,
        "SERVER_NAME": server_name,
        "SERVER_PORT": str(server_port),
        "SERVER_PROTOCOL": "HTTP/1.1" if request.version >= 11 else "HTTP/1.0",
        "SERVER_SOFTWARE": "prefork",
        "REMOTE_ADDR": remote_addr,
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": url_scheme,
        "wsgi.input": io.BytesIO(request.body),
        "wsgi.input_terminated": True,
        "wsgi.errors": errors if errors is not None else LogStream(),
        "wsgi.multithread": False,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    if remote_port != "":
        environ["REMOTE_PORT"] = str(remote_port)
    for name, value in request.headers:
        key = name.upper()
        if "_" in key:
            continue  # "X_Forwarded" must not pose as "X-Forwarded" (CGI names cannot tell them apart)
        key = key.replace("-", "_")
        if key == "CONTENT_TYPE" or key == "CONTENT_LENGTH":
            environ[key] = value
            continue
        key = "HTTP_" + key
        if key in environ:
            environ[key] += ("; " if key == "HTTP_COOKIE" else ",") + value
        else:
            environ[key] = value
    if request.chunked:
        environ["CONTENT_LENGTH"] = str(len(request.body))
    if extra:
        environ.update(extra)
    return environ


class AppError(Exception):
    """The app failed before its response head existed: the caller answers 500."""


class WSGICall:
    """One call of a WSGI app.

    start() calls the app and pulls the iterable until the first non-empty chunk (PEP 3333:
    the head goes out with it) or its end. Then `status`, `code`, `headers` (what the app
    gave, hop-by-hop fields removed), `close_requested` (the app said `Connection: close`),
    `length` (Content-Length as the app gave it, or as counted from a list body) and
    `first` (bytes) are set. next_chunk() returns the following chunks and None at the end.
    close() calls the iterable's close() once. Errors before the head raise AppError;
    later ones propagate (the caller can only cut the connection).
    """

    def __init__(self, app, environ):
        self._app = app
        self._environ = environ
        self._result = None
        self._iterator = None
        self._written = []  # data given to write() and not taken yet
        self._head_sent = False
        self._used_write = False
        self._closed = False
        self.status = None
        self.code = 0
        self.headers = None
        self.close_requested = False
        self.length = None
        self.first = b""
        self.exhausted = False

    def start_response(self, status, headers, exc_info=None):
        if exc_info is not None:
            try:
                if self._head_sent:
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None
        elif self.status is not None:
            raise AssertionError("start_response called a second time without exc_info")
        if not isinstance(status, str):
            raise TypeError("status must be a str, got %r" % (status,))
        http11.status_code(status)
        for name, value in headers:
            if not isinstance(name, str) or not isinstance(value, str):
                raise TypeError("header %r: name and value must be str" % ((name, value),))
            if "\r" in value or "\n" in value or "\r" in name or "\n" in name or ":" in name:
                raise ValueError("header %r contains a line break or colon" % ((name, value),))
        self.status = status
        self.headers = list(headers)
        return self._write

    def _write(self, data):
        if self.status is None:
            raise AssertionError("write() before start_response")
        if not isinstance(data, (bytes, bytearray)):
            raise TypeError("write() takes bytes, got %s" % type(data).__name__)
        self._written.append(bytes(data))
        self._used_write = True

    def start(self):
        try:
            self._result = self._app(self._environ, self.start_response)
            self._iterator = iter(self._result)
            first = self._pull_first()
            if self.status is None:
                raise AssertionError("the application did not call start_response")
            self._set_head(first)
        except Exception as error:
            self.close()
            raise AppError(error) from error

    def _pull_first(self):
        while True:
            if self._written:
                data = self._written.pop(0)
            else:
                try:
                    data = next(self._iterator)
                except StopIteration:
                    self.exhausted = True
                    return b""
                data = _as_bytes(data)
            if data:
                return data

    def _set_head(self, first):
        self._head_sent = True
        self.code = http11.status_code(self.status)
        kept = []
        for name, value in self.headers:
            lower = name.lower()
            if lower == "connection":
                if "close" in (token.strip().lower() for token in value.split(",")):
                    self.close_requested = True
                continue
            if lower in HOP_BY_HOP:
                continue
            if lower == "content-length":
                value = value.strip()
                if not value.isdigit():
                    raise ValueError("bad Content-Length %r from the application" % value)
                self.length = int(value)
            kept.append((name, value))
        self.headers = kept
        self.first = first
        bodiless = self.code < 200 or self.code in (204, 304)
        if self.length is None and not bodiless and isinstance(self._result, (list, tuple)) and not self._used_write:
            # A list body (Flask's usual response, wsgiref's) has a length known now.
            self.length = sum(len(_as_bytes(item)) for item in self._result)
            self.headers.append(("Content-Length", str(self.length)))
            self.exhausted = True
            self.first = b"".join(_as_bytes(item) for item in self._result)

    def next_chunk(self):
        if self.exhausted:
            return None
        while True:
            if self._written:
                data = self._written.pop(0)
            else:
                try:
                    data = _as_bytes(next(self._iterator))
                except StopIteration:
                    self.exhausted = True
                    return None
            if data:
                return data

    def close(self):
        if self._closed:
            return
        self._closed = True
        closer = getattr(self._result, "close", None)
        if closer is not None:
            try:
                closer()
            except Exception:
                log.exception("the response iterable's close() failed")


def _as_bytes(data):
    if isinstance(data, bytes):
        return data
    if isinstance(data, (bytearray, memoryview)):
        return bytes(data)
    raise TypeError("the application yielded %s, not bytes" % type(data).__name__)


def load_app(spec):
    """The callable named by "module:name" ("module" alone: `application`, else `app`).
    The name may be dotted ("pkg.mod:obj.wsgi_app") or a factory call ("mod:create_app()")."""
    module_name, _, name = spec.partition(":")
    if not module_name:
        raise ValueError("expected MODULE:CALLABLE, got %r" % spec)
    import importlib

    module = importlib.import_module(module_name)
    if not name:
        for candidate in ("application", "app"):
            if hasattr(module, candidate):
                name = candidate
                break
        else:
            raise ValueError("module %r has neither `application` nor `app`" % module_name)
    call = name.endswith("()")
    if call:
        name = name[:-2]
    target = module
    for part in name.split("."):
        if not part.isidentifier():
            raise ValueError("bad callable name %r" % name)
        try:
            target = getattr(target, part)
        except AttributeError:
            raise ValueError("module %r has no %r" % (module_name, name)) from None
    if call:
        target = target()
    if not callable(target):
        raise ValueError("%s is not callable" % spec)
    return target

