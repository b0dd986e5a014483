"""Websocket upgrades, handled before Falcon (whose WebSocket support is ASGI-only).

The WSGI wrapper hands ``{base}/api/kernels/{id}/channels`` to the kernel API, which takes the
connection's socket over; gunicorn is then told the request is already handled.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import falcon

from fngw.http.paths import decode_parameter, decoded_path, routing_path
from fngw.kernel_api import KernelApi


def _path(environ: dict[str, Any]) -> str:
    """The path to route on, as ``RawPathRouting`` computes it for Falcon."""
    path = environ.get("PATH_INFO", "")
    raw = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    if raw:
        routed = routing_path(raw)
        if decoded_path(routed) == path.encode("latin-1", "replace").decode("utf-8", "replace"):
            return routed
    return path


def with_websockets(app: falcon.App, api: KernelApi, authorize: Callable[[falcon.Request], None]) -> Callable:
    try:
        from gunicorn.workers.base_async import ALREADY_HANDLED
    except ImportError:  # pragma: no cover - gunicorn is a dependency
        ALREADY_HANDLED = []  # noqa: N806

    def application(environ: dict[str, Any], start_response: Callable):
        kernel_id = api.channels_path_kernel(_path(environ))
        if kernel_id is None or environ.get("REQUEST_METHOD") != "GET":
            return app(environ, start_response)
        body = api.open_channels(environ, start_response, decode_parameter(kernel_id), authorize)
        return ALREADY_HANDLED if body is None else body

    return application
