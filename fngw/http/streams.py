"""A response body sent while it is produced, whose end the access log and metrics wait for.

Falcon's middleware runs when the responder returns, before the server has sent a streamed body;
``ObservedStream`` is the body's iterator, and calls its ``when_done`` callbacks once the body has
been sent (or the client has gone), with what was sent and when the first byte went out.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator


class ObservedStream:
    """Wraps ``chunks`` (an iterator of bytes); ``mode`` names the stream for logs (``sse``,
    ``ndjson``, ``plain``); ``started``: when the request began (``time.perf_counter()``), from
    which the time to the first byte counts."""

    def __init__(self, chunks: Iterator[bytes], mode: str, started: float | None = None):
        self._chunks = chunks
        self.mode = mode
        self.started = time.perf_counter() if started is None else started  # perf_counter seconds
        self.sent = 0  # bytes handed to the server
        self.first_byte: float | None = None  # seconds from the start to the first chunk
        self.client_left = False  # the producer saw the client go before the end
        self._callbacks: list[Callable[[ObservedStream], None]] = []
        self._done = False

    def when_done(self, callback: Callable[[ObservedStream], None]) -> None:
        """Call ``callback(stream)`` once the stream has ended (sent, failed or closed early)."""
        self._callbacks.append(callback)

    def __iter__(self) -> ObservedStream:
        return self

    def __next__(self) -> bytes:
        try:
            chunk = next(self._chunks)
        except BaseException:
            self._finish()
            raise
        if self.first_byte is None:
            self.first_byte = time.perf_counter() - self.started
        self.sent += len(chunk)
        return chunk

    def close(self) -> None:
        """The server is done with the body (WSGI calls it, also when the client went away)."""
        close = getattr(self._chunks, "close", None)
        if close is not None:
            close()
        self._finish()

    def _finish(self) -> None:
        if self._done:
            return
        self._done = True
        for callback in self._callbacks:
            callback(self)
