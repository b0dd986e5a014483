"""Request limits applied before any resource runs."""

from __future__ import annotations

import falcon
from gunicorn.http.errors import ParseException

from .errors import GatewayError


class BodyLimit:
    """Refuses bodies larger than ``max_body`` bytes with 413 before reading them."""

    def __init__(self, max_body: int):
        self.max_body = max_body

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        length = req.content_length
        if length is not None and length > self.max_body:
            raise falcon.HTTPContentTooLarge(
                title="Content Too Large",
                description=f"the request body has {length} bytes; this gateway accepts at most {self.max_body}",
            )


def body_stream(req: falcon.Request):
    """Falcon's ``bounded_stream`` reads nothing without a Content-Length, which would silently drop
    a chunked body; the WSGI server's stream decodes chunks and ends at the body's end."""
    return req.bounded_stream if req.content_length is not None else req.stream


def read_body(req: falcon.Request, max_body: int) -> bytes:
    """The whole request body, at most ``max_body`` bytes (chunked bodies included)."""
    try:
        data = body_stream(req).read(max_body + 1)
    except ParseException as exc:  # gunicorn decoding a chunked body: bad chunk size, missing CRLF
        raise GatewayError(falcon.HTTP_400, "Bad Request", f"the request body cannot be read: {exc}") from None
    if len(data) > max_body:
        raise GatewayError(
            falcon.HTTP_413,
            "Content Too Large",
            f"the request body is larger than this gateway accepts ({max_body} bytes)",
        )
    return data
