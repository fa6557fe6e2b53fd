"""prefork_wsgi: WSGI apps as exec'd preforkd workers (`python3 -m prefork_wsgi MODULE:CALLABLE`).

Stdlib only (Python 3.9+). It speaks the channel protocol of lib/PROTOCOL.md, version 1:
channel (the frame codec), http11 (HTTP/1.x parsing and response heads), wsgi (PEP 3333),
worker (the event loop), logfmt (the master's log formats), __main__ (start-up).
"""

__version__ = "1.0.0"
PROTOCOL_VERSION = 1
