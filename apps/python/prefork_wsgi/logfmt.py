"""The worker's log lines, in the master's formats (lib/src/core/log.cpp), one write(2) each:

text: 2026-11-26T16:02:23.123Z info    worker.3[1235] message key=value key2="two words"
json: {"ts":"...","level":"info","role":"worker","pid":1235,"worker":3,"msg":"message","key":"value"}

Structured fields come from `extra={"fields": {...}}`; a traceback is one more field, so
that every record stays one line. The destination is the config's log.file: "-" (stderr,
the master's log destination) or a path opened for append and reopened on reopen_logs.
"""

import json
import logging
import math
import os
import time

TRACE = 5
LEVELS = {"trace": TRACE, "debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
          "error": logging.ERROR, "fatal": logging.CRITICAL}
_LINE_KEYS = ("ts", "level", "role", "pid", "worker", "msg")

logging.addLevelName(TRACE, "TRACE")


def level_name(levelno):
    for name, number in (("trace", TRACE), ("debug", logging.DEBUG), ("info", logging.INFO),
                         ("warning", logging.WARNING), ("error", logging.ERROR)):
        if levelno <= number:
            return name
    return "fatal"


def timestamp(created):
    seconds = int(created)
    millis = int((created - seconds) * 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + ".%03dZ" % millis


_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f"}


def _escape_control(ch):
    return _ESCAPES.get(ch) or "\\u%04x" % ord(ch)


def _text_message(text):
    return "".join(_escape_control(c) if ord(c) < 0x20 or ord(c) == 0x7F else c for c in text)


def _text_string(text):
    plain = bool(text) and not any(ord(c) <= 0x20 or c in '"=\\\x7f' for c in text)
    if plain:
        return text
    out = []
    for c in text:
        if c in '"\\':
            out.append("\\" + c)
        elif ord(c) < 0x20 or ord(c) == 0x7F:
            out.append(_escape_control(c))
        else:
            out.append(c)
    return '"' + "".join(out) + '"'


def _text_value(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isfinite(value):
            return repr(value)
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    return _text_string(str(value))


def _json_value(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, (bool, int, float)):
        return value
    return str(value)


class LineFormatter(logging.Formatter):
    def __init__(self, line_format="text", worker_id=0):
        super().__init__()
        self.line_format = line_format
        self.worker_id = worker_id

    def format(self, record):
        fields = dict(getattr(record, "fields", None) or {})
        if record.exc_info:
            fields["traceback"] = self.formatException(record.exc_info)
        elif record.exc_text:
            fields["traceback"] = record.exc_text
        if record.name not in ("prefork_wsgi", "root"):
            fields.setdefault("logger", record.name)
        message = record.getMessage()
        level = level_name(record.levelno)
        ts = timestamp(record.created)
        pid = os.getpid()
        if self.line_format == "json":
            line = {"ts": ts, "level": level, "role": "worker", "pid": pid, "worker": self.worker_id, "msg": message}
            for key, value in fields.items():
                line["event." + key if key in _LINE_KEYS else key] = _json_value(value)
            return json.dumps(line, ensure_ascii=False, separators=(",", ":"), default=str) + "\n"
        parts = ["%s %s worker.%d[%d] %s" % (ts, level.ljust(7), self.worker_id, pid, _text_message(message))]
        parts.extend(" %s=%s" % (key, _text_value(value)) for key, value in fields.items())
        return "".join(parts) + "\n"


class FdHandler(logging.Handler):
    """Writes each formatted line with one write(2) (lines of the master and of every
    worker never interleave mid-line); reopen() re-opens a log file after rotation."""

    def __init__(self, path="-"):
        super().__init__()
        self.path = path
        self.fd = 2
        self._owned = False
        self.reopen()

    def reopen(self):
        if self.path == "-":
            return
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC | os.O_NOCTTY, 0o644)
        old, owned = self.fd, self._owned
        self.fd, self._owned = fd, True
        if owned:
            os.close(old)

    def emit(self, record):
        try:
            data = self.format(record).encode("utf-8", "replace")
            while data:
                try:
                    written = os.write(self.fd, data)
                except InterruptedError:
                    continue
                except BlockingIOError:
                    time.sleep(0.001)
                    continue
                data = data[written:]
        except Exception:
            pass  # nowhere left to report it

    def close(self):
        if self._owned:
            os.close(self.fd)
            self._owned = False
        super().close()


def setup(log_config, worker_id):
    """Routes every logger (the app's too) to one handler in the configured format."""
    level = LEVELS.get(str(log_config.get("level", "info")), logging.INFO)
    handler = None
    path = log_config.get("file", "-") or "-"
    try:
        handler = FdHandler(path)
    except OSError as error:
        handler = FdHandler("-")
        handler.setFormatter(LineFormatter(log_config.get("format", "text"), worker_id))
        logging.getLogger().addHandler(handler)
        logging.getLogger("prefork_wsgi").error("cannot open log file; logging to stderr",
                                                extra={"fields": {"file": path, "error": str(error)}})
    root = logging.getLogger()
    for existing in list(root.handlers):
        if existing is not handler:
            root.removeHandler(existing)
    handler.setFormatter(LineFormatter(log_config.get("format", "text"), worker_id))
    if handler not in root.handlers:
        root.addHandler(handler)
    root.setLevel(level)
    logging.captureWarnings(True)
    return handler
