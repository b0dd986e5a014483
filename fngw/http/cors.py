"""Cross-origin rules shared by the CORS middleware and the kernel API's origin check."""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlsplit

import falcon


def is_preflight(req: falcon.Request) -> bool:
    """A CORS preflight: ``OPTIONS`` with ``Origin`` and ``Access-Control-Request-Method``."""
    return (
        req.method == "OPTIONS"
        and req.get_header("Origin") is not None
        and req.get_header("Access-Control-Request-Method") is not None
    )


def same_origin(req: falcon.Request, origin: str) -> bool:
    """``origin`` names the host the request was sent to."""
    host = urlsplit(origin).netloc
    return host == req.host or host == req.get_header("Host")


def origin_allowed(origin: str, allowed: Sequence[str] | None) -> bool:
    """``origin`` is among ``allowed`` (``("*",)`` allows any; None: CORS is off, none is)."""
    return allowed is not None and (tuple(allowed) == ("*",) or origin in allowed)
