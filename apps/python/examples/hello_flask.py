"""The Flask hello app under preforkd (needs Flask: apt-get install python3-flask).

    PYTHONPATH=apps/python:apps/python/examples \
        build/bin/preforkd -b unix:run/app.sock -w auto --exec "python3 -m prefork_wsgi hello_flask:app"
    curl --unix-socket run/app.sock http://localhost/      # Hello, world!
"""

from flask import Flask

app = Flask(__name__)


@app.route("/")
def hello():
    return "Hello, world!\n"
