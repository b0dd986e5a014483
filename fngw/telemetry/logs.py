"""The gateway's log lines: JSON (one object per line, for collectors) or text (for people).

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

FORMATS = ("json", "text")


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
    """``time LEVEL logger: message [key=value ...]``, one line per record (tracebacks excepted),
    control characters escaped."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line of text."""
        fields = getattr(record, "fields", None) or {}
        extra = " ".join(f"{k}={_printable(str(v))}" for k, v in fields.items() if v is not None)
        text = f"{_time(record)} {record.levelname:<7} {record.name}: {_printable(record.getMessage())}"
        if extra:
            text += f" [{extra}]"
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


def configure(log_format: str = "json", stream: TextIO | None = None, level: int = logging.INFO) -> None:
    """Route every ``fngw.*`` logger to ``stream`` (stderr) in ``log_format``; idempotent."""
    if log_format not in FORMATS:
        raise ValueError(f"log format must be one of {FORMATS}, not {log_format!r}")
    root = logging.getLogger("fngw")
    for handler in list(root.handlers):
        if getattr(handler, "fngw", False):
            root.removeHandler(handler)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.fngw = True  # type: ignore[attr-defined]
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    root.addHandler(handler)
    root.setLevel(level)
    root.propagate = False
