"""One JSON error shape for the whole gateway: ``{"reason": ..., "message": ...}`` plus helpful fields.

Every error, whether raised as a ``falcon.HTTPError`` or escaping as an unexpected exception, is
rendered here. Unexpected exceptions are logged with their traceback and answered with a plain 500;
the client never sees a traceback.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import falcon

log = logging.getLogger("fngw.http")


class GatewayError(falcon.HTTPError):
    """An HTTP error rendered as ``{"reason", "message", **extra}`` (extra: ``ename``, ``evalue``,
    ``pool`` ...). ``status`` is a code (``503``) or a status line (``"499 Client Closed Request"``);
    the reason is always the status's own phrase, so the two cannot disagree."""

    def __init__(
        self,
        status: str | int,
        message: str = "",
        headers: dict[str, str] | None = None,
        retry_after: int | None = None,
        **extra: Any,
    ):
        if retry_after is not None:  # as Falcon's own errors take it: seconds, sent as Retry-After
            headers = {**(headers or {}), "Retry-After": str(retry_after)}
        super().__init__(status, description=message, headers=headers)
        self.extra = extra

    @property
    def message(self) -> str:
        """The message for the client (the error's description)."""
        return self.description or ""


def error_body(error: falcon.HTTPError) -> dict[str, Any]:
    """The JSON body of ``error``: ``{"reason", "message"}`` plus a ``GatewayError``'s extras."""
    status_line = falcon.code_to_http_status(error.status)
    # falcon titles its own errors with the status line ("404 Not Found"); the reason is the phrase.
    reason = error.title if error.title and error.title != status_line else status_line.split(" ", 1)[1]
    body: dict[str, Any] = {"reason": reason, "message": error.description or ""}
    body.update(getattr(error, "extra", {}))
    return body


def serialize_error(req: falcon.Request, resp: falcon.Response, error: falcon.HTTPError) -> None:
    """Falcon's error serializer: the one JSON shape, whatever the Accept header says."""
    # JSON whatever the client's Accept says: one shape is easier for every client than negotiation.
    resp.content_type = falcon.MEDIA_JSON
    body = error_body(error)
    if isinstance(error, falcon.HTTPMethodNotAllowed) and not body["message"]:
        allowed = dict(error.headers or {}).get("Allow", "")
        body["message"] = f"{req.method} is not allowed on {req.path}" + (f" (allowed: {allowed})" if allowed else "")
    resp.text = json.dumps(body)


def handle_unexpected(req: falcon.Request, resp: falcon.Response, ex: Exception, params: dict[str, Any]) -> None:
    """Any exception no other handler took: logged with its traceback, answered 500 without one."""
    if isinstance(ex, falcon.HTTPError | falcon.HTTPStatus):
        raise ex  # falcon's own handlers deal with these
    log.exception("unhandled error on %s %s", req.method, req.path)
    raise falcon.HTTPInternalServerError(
        title="Internal Server Error", description="the gateway failed to handle this request; see its log"
    )


def install(app: falcon.App) -> None:
    """Render every error of ``app`` as JSON and answer unexpected exceptions with a logged 500."""
    app.set_error_serializer(serialize_error)
    app.add_error_handler(Exception, handle_unexpected)
