"""Request limits applied before any resource runs."""

from __future__ import annotations

import falcon


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
