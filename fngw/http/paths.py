"""Routing on the path as the client encoded it.

WSGI servers decode ``PATH_INFO`` before the application sees it, so ``/files/a%2Fb`` arrives as
``/files/a/b`` and either matches nothing or matches a deeper route with the wrong parameters.
Kernel Gateway (Tornado) matches the raw path and decodes each captured group after matching; so
does fngw. Each raw segment is decoded except for ``/`` and ``%``, which stay ``%2F`` and ``%25``:
literal route segments match as before (``/hell%6F`` is ``/hello``), a slash inside a segment can
no longer split it, and the two escapes are undone in every path parameter before any responder
sees it.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import unquote, urlsplit

import falcon

from .errors import GatewayError

_ESCAPED = re.compile("%2F|%25")
_UNESCAPE = {"%2F": "/", "%25": "%"}


def routing_path(raw_uri: str, errors: str = "replace") -> str:
    """The path of ``raw_uri`` (a request target, with or without query, origin or absolute form)
    with every segment decoded except ``/`` and ``%``, which are written ``%2F`` and ``%25``.
    ``errors``: what an escape that is not UTF-8 becomes (``"strict"``: ``UnicodeDecodeError``)."""
    target = raw_uri.split("#", 1)[0].split("?", 1)[0]
    if not target.startswith("/"):
        target = urlsplit(target).path or "/"
    return "/".join(
        unquote(segment, errors=errors).replace("%", "%25").replace("/", "%2F") for segment in target.split("/")
    )


def decode_parameter(value: str) -> str:
    """A path parameter captured from a ``routing_path``: ``%2F`` and ``%25`` undone."""
    return _ESCAPED.sub(lambda m: _UNESCAPE[m.group()], value)


def decoded_path(path: str) -> str:
    """A ``routing_path`` as the WSGI server would have decoded it."""
    return decode_parameter(path)


class RawPathRouting:
    """Falcon middleware: routes on ``routing_path(RAW_URI)``; path parameters reach responders
    decoded. Must be the last middleware with a ``process_request`` (it changes ``req.path``).
    Without ``RAW_URI`` (a server that does not keep the raw target), or when the raw target does
    not decode to the path the server gave (a ``SCRIPT_NAME`` was stripped), routing is unchanged."""

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        """Route on the raw path; 400 when it is not UTF-8."""
        raw = req.env.get("RAW_URI") or req.env.get("REQUEST_URI")
        if not raw:
            return
        try:
            path = routing_path(raw, errors="strict")
        except UnicodeDecodeError:  # as a query string that is not UTF-8 is (fngw.endpoints.request)
            raise GatewayError(400, message="the path is not valid UTF-8") from None
        if path != req.path and decoded_path(path) == req.path:
            req.path = path

    def process_resource(self, req: falcon.Request, resp: falcon.Response, resource: Any, params: dict) -> None:
        """Decode each path parameter; 404 for an empty one."""
        for name, value in params.items():
            if value == "":  # /files/ does not name a file: Kernel Gateway's routes need a character
                raise GatewayError(404, message=f"no route matches {req.path} (the {name} segment is empty)")
            if isinstance(value, str) and "%2" in value:
                params[name] = decode_parameter(value)
