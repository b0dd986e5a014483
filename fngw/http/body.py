"""Request bodies, read whole and bounded.

``BodyLimit`` refuses a declared ``Content-Length`` over the limit before anything is read;
``read_body`` reads at most the limit (chunked bodies included) and says 413 past it. A body the
server cannot decode (a malformed chunk) reaches us as ``UnreadableBody``: fngw's gunicorn worker
turns gunicorn's own parse errors into it.
"""

from __future__ import annotations

from typing import Any

import falcon

from .errors import GatewayError


class UnreadableBody(ValueError):
    """The server could not decode the request body (for example a malformed chunk size)."""


class BodyLimit:
    """Falcon middleware: refuses bodies declared larger than ``max_body`` bytes with 413, before
    reading them."""

    def __init__(self, max_body: int):
        self.max_body = max_body

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        """413 when the declared Content-Length is over max_body."""
        length = req.content_length
        if length is not None and length > self.max_body:
            raise GatewayError(
                413, message=f"the request body has {length} bytes; this gateway accepts at most {self.max_body}"
            )


def body_stream(req: falcon.Request) -> Any:
    """Falcon's ``bounded_stream`` reads nothing without a Content-Length, which would silently drop
    a chunked body; the WSGI server's stream decodes chunks and ends at the body's end."""
    return req.bounded_stream if req.content_length is not None else req.stream


def read_body(req: falcon.Request, max_body: int) -> bytes:
    """The whole request body, at most ``max_body`` bytes (chunked bodies included). Raises
    ``GatewayError`` 400 when the body cannot be decoded, 413 when it is larger than ``max_body``."""
    try:
        data = body_stream(req).read(max_body + 1)
    except UnreadableBody as exc:
        raise GatewayError(400, message=f"the request body cannot be read: {exc}") from None
    if len(data) > max_body:
        raise GatewayError(413, message=f"the request body is larger than this gateway accepts ({max_body} bytes)")
    return data
