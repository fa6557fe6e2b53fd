"""The hello app as plain WSGI (no Flask needed): GET and HEAD on / and /healthz, 405 with
`Allow: GET, HEAD` for another method there, 404 elsewhere, as preforkd's C++ hello app.

    PYTHONPATH=apps/python:apps/python/examples \
        build/bin/preforkd -b unix:run/app.sock -w 2 --exec "python3 -m prefork_wsgi hello_wsgi:app"
    curl --unix-socket run/app.sock http://localhost/      # Hello, world!
"""

ROUTES = {"/": b"Hello, world!\n", "/healthz": b"ok\n"}


def app(environ, start_response):
    body = ROUTES.get(environ["PATH_INFO"])
    if body is None:
        status, body, extra = "404 Not Found", b"Not Found\n", []
    elif environ["REQUEST_METHOD"] not in ("GET", "HEAD"):
        status, body, extra = "405 Method Not Allowed", b"Method Not Allowed\n", [("Allow", "GET, HEAD")]
    else:
        status, extra = "200 OK", []
    start_response(status, [("Content-Type", "text/plain; charset=utf-8"),
                            ("Content-Length", str(len(body)))] + extra)
    return [body]
