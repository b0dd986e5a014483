"""The gateway's log lines: JSON (one object per line, for collectors) or text (for people).

``auto`` (the default) picks text when the log goes to a terminal and JSON otherwise. Text puts a
request on one short line (``12:01:02 GET /hello 200 6.1 ms pool=hello kernel=3f2a``); JSON keeps
every field, for machines.

Every fngw logger writes through ``configure``'s handler. A record may carry structured fields in
``extra={"fields": {...}}``; they become keys of the JSON object, or ``key=value`` pairs in text.
Nothing here ever logs a request body, a header value or a query string: callers pass only the
fields below, and tokens travel in headers or the query.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import datetime, timezone
from typing import Any, TextIO

FORMATS = ("auto", "json", "text")


def _time(record: logging.LogRecord) -> str:
    stamp = datetime.fromtimestamp(record.created, timezone.utc)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond // 1000:03d}Z"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, and the record's fields."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as a JSON line."""
        line: dict[str, Any] = {
            "time": _time(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        line.update(getattr(record, "fields", None) or {})
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


# C0 and C1 controls, DEL, and the Unicode line and paragraph separators: anything a terminal
# acts on or a log reader splits lines at.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def _printable(text: str) -> str:
    """``text`` with control characters escaped (``\\x0d``, ``\\u2028``): a request path carrying
    ``%0d%0a`` or ``%c2%85`` must not start a forged log line, nor an escape sequence reach a
    terminal."""
    return _CONTROL.sub(
        lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 0x100 else f"\\u{ord(m.group()):04x}", text
    )


class TextFormatter(logging.Formatter):
    """One short line per record, for a person at a terminal: local time, then a request as
    ``GET /hello 200 6.1 ms pool=hello kernel=3f2a id=9c1e04b2``, or anything else as
    ``LEVEL logger: message [key=value ...]``. Control characters are escaped; a traceback follows
    its line in full."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line of text (and its traceback, if any)."""
        fields = getattr(record, "fields", None) or {}
        stamp = datetime.fromtimestamp(record.created).strftime("%H:%M:%S")
        if fields.get("event") == "request":
            text = f"{stamp} {_request_line(fields)}"
        else:
            extra = " ".join(f"{k}={_printable(str(v))}" for k, v in fields.items() if v is not None)
            text = f"{stamp} {record.levelname:<7} {record.name}: {_printable(record.getMessage())}"
            if extra:
                text += f" [{extra}]"
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


# Short forms of ids: enough to tell a terminal's lines apart; the JSON log keeps them whole.
_SHORT = {"kernel_id": ("kernel", 4), "request_id": ("id", 8), "job_id": ("job", 8)}


def _request_line(fields: dict[str, Any]) -> str:
    """``GET /hello 200 6.1 ms`` and the fields a person looks at, from an access record's fields."""
    parts = [str(fields.get("method")), _printable(str(fields.get("path"))), str(fields.get("status"))]
    duration = fields.get("duration_ms")
    if duration is not None:
        parts.append(f"{duration:.1f} ms")
    if fields.get("pool") is not None:
        parts.append(f"pool={_printable(str(fields['pool']))}")
    wait = fields.get("pool_wait_ms")
    if wait is not None and wait >= 1:  # waiting for a kernel is worth a glance; microseconds are not
        parts.append(f"wait={wait:.0f}ms")
    for key, (name, length) in _SHORT.items():
        value = fields.get(key)
        if value is not None:
            parts.append(f"{name}={_printable(str(value))[:length]}")
    if fields.get("trace_id") is not None:
        parts.append(f"trace={fields['trace_id']}")
    if fields.get("stream") is not None:
        parts.append(f"stream={fields['stream']}")
    if fields.get("client_left"):
        parts.append("client-left")
    return " ".join(parts)


def resolve_format(log_format: str, stream: TextIO) -> str:
    """``json`` or ``text``: ``auto`` is text on a terminal, JSON otherwise."""
    if log_format not in FORMATS:
        raise ValueError(f"log format must be one of {FORMATS}, not {log_format!r}")
    if log_format != "auto":
        return log_format
    isatty = getattr(stream, "isatty", None)
    return "text" if isatty is not None and isatty() else "json"


def configure(log_format: str = "auto", stream: TextIO | None = None, level: int = logging.INFO) -> str:
    """Route every ``fngw.*`` logger to ``stream`` (stderr) in ``log_format`` (one of ``FORMATS``);
    idempotent. Returns the format chosen (``json`` or ``text``); ``ValueError`` for another name."""
    stream = stream or sys.stderr
    chosen = resolve_format(log_format, stream)
    handler = logging.StreamHandler(stream)
    handler.fngw = True  # type: ignore[attr-defined]
    handler.setFormatter(JsonFormatter() if chosen == "json" else TextFormatter())
    # OpenTelemetry's exporters log their own retries and failures: in the same format, so a JSON
    # log stays one object per line.
    for name, at in (("fngw", level), ("opentelemetry", logging.WARNING)):
        logger = logging.getLogger(name)
        for old in list(logger.handlers):
            if getattr(old, "fngw", False):
                logger.removeHandler(old)
        logger.addHandler(handler)
        logger.setLevel(at)
        logger.propagate = False
    return chosen
