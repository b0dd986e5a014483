"""Which stream a request gets, and how its events are framed and held (fngw.endpoints.streaming).

``stream_mode`` chooses from the request's Accept and the endpoint's settings; ``encode`` frames one
event for SSE, NDJSON or plain text; ``StreamBuffer`` holds encoded output for the client, bounded
by bytes, and never makes the producer wait.
"""

from __future__ import annotations

import json
import re
from collections import deque
from typing import Any

import falcon
import gevent.event

from fngw.http.accept import named_preference
from fngw.manifest import StreamSettings

SSE, NDJSON, PLAIN = "text/event-stream", "application/x-ndjson", "text/plain"
STREAM_TYPES = {
    SSE: "text/event-stream; charset=utf-8",
    NDJSON: "application/x-ndjson",
    PLAIN: "text/plain; charset=utf-8",
}
MODE_NAMES = {SSE: "sse", NDJSON: "ndjson", PLAIN: "plain"}
_LINE_BREAKS = re.compile(r"\r\n|\r|\n")


def stream_mode(req: falcon.Request, settings: StreamSettings) -> str | None:
    """SSE or NDJSON when the client names it in Accept (``fngw.http.accept``), plain text when
    the endpoint streams and the client accepts text/plain; None for a buffered response (always
    for HTTP/1.0 clients, which cannot read chunked bodies, and for HEAD, which has no body)."""
    if req.env.get("SERVER_PROTOCOL") == "HTTP/1.0" or req.method == "HEAD":
        return None
    chosen = named_preference(req, (SSE, NDJSON))
    if chosen is not None:
        return chosen
    return PLAIN if settings.enabled and req.client_accepts(PLAIN) else None


class StreamBuffer:
    """Encoded output waiting for the client, at most ``limit`` bytes (one chunk larger than the
    limit is taken when the buffer is empty). ``push`` never waits."""

    def __init__(self, limit: int):
        self.limit = limit
        self.chunks: deque[bytes] = deque()
        self.size = 0
        self.dropped = 0  # bytes refused since the last ``dropped`` marker
        self.changed = gevent.event.Event()
        self.closed = False

    def push(self, chunk: bytes, force: bool = False) -> bool:
        """Queue ``chunk``; False (and counted in ``dropped``) when it does not fit."""
        if not force and self.chunks and self.size + len(chunk) > self.limit:
            self.dropped += len(chunk)
            return False
        self.chunks.append(chunk)
        self.size += len(chunk)
        self.changed.set()
        return True

    def take(self) -> bytes:
        """Everything queued, as one write."""
        data = b"".join(self.chunks)
        self.chunks.clear()
        self.size = 0
        self.changed.clear()
        return data

    def close(self) -> None:
        """No more output: the reader ends after what is queued."""
        self.closed = True
        self.changed.set()


def encode(mode: str, ident: int, name: str, data: Any) -> bytes:
    """One event in ``mode``'s framing (plain text carries stdout and markers only: b"" else)."""
    if mode == SSE:
        # CR, LF and CRLF all end an SSE line: a "\r" (a progress bar) arrives as a line break
        lines = _LINE_BREAKS.split(data) if isinstance(data, str) else [json.dumps(data)]
        return (f"id: {ident}\nevent: {name}\n" + "".join(f"data: {line}\n" for line in lines) + "\n").encode()
    if mode == NDJSON:
        return (json.dumps({"id": ident, "event": name, "data": data}) + "\n").encode()
    if name == "stdout":
        return str(data).encode()
    if name == "dropped":
        return f"\n[fngw: {data['bytes']} bytes of output dropped: the client read too slowly]\n".encode()
    if name == "error":
        return f"\n[fngw: {data['message']}]\n".encode()
    return b""
