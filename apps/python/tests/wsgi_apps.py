"""The WSGI app the worker tests run (python3 -m prefork_wsgi tests.wsgi_apps:app).

/            Hello, world!
/echo        the request body back
/environ     selected environ keys as JSON
/stream?n=N  N chunks of a generator (no Content-Length: chunked on HTTP/1.1)
/sleep?ms=N  blocks the worker's loop N ms
/boom        raises before start_response (500, the worker survives)
/boom-late   raises after the first body chunk (the connection is cut)
/close       asks for `Connection: close`
"""

import json
import os
import time
from urllib.parse import parse_qs

NOT_CALLABLE = 42


def _query(environ, name, default):
    values = parse_qs(environ.get("QUERY_STRING", "")).get(name)
    return int(values[0]) if values else default


def app(environ, start_response):
    path = environ["PATH_INFO"]
    text = [("Content-Type", "text/plain; charset=utf-8")]
    if path == "/":
        start_response("200 OK", text)
        return [b"Hello, world!\n"]
    if path == "/echo":
        body = environ["wsgi.input"].read()
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return [body]
    if path == "/environ":
        keys = ("REQUEST_METHOD", "PATH_INFO", "QUERY_STRING", "SERVER_PROTOCOL", "REMOTE_ADDR", "CONTENT_LENGTH",
                "prefork.worker_id", "prefork.generation", "prefork.listener_index")
        body = json.dumps({k: environ.get(k) for k in keys} | {"pid": os.getpid()}).encode()
        start_response("200 OK", [("Content-Type", "application/json")])
        return [body]
    if path == "/stream":
        start_response("200 OK", text)
        return (b"chunk %d\n" % i for i in range(_query(environ, "n", 3)))
    if path == "/sleep":
        time.sleep(_query(environ, "ms", 100) / 1000.0)
        start_response("200 OK", text)
        return [b"slept\n"]
    if path == "/boom":
        raise RuntimeError("boom on purpose")
    if path == "/boom-late":
        def late():
            yield b"partial"
            raise RuntimeError("late boom on purpose")

        start_response("200 OK", text)
        return late()
    if path == "/close":
        start_response("200 OK", text + [("Connection", "close"), ("Content-Length", "4")])
        return [b"bye\n"]
    start_response("404 Not Found", text)
    return [b"Not Found\n"]


application = app


def make_app():
    return app
