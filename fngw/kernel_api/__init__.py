"""The Jupyter-compatible kernel API: REST resources, sessions and websocket channels.

``KernelApi`` owns one worker's registry, sessions and channel hubs; ``routes`` lists its REST
resources for the composition root, and ``open_channels`` serves an upgraded websocket.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

import falcon

from fngw.http.errors import GatewayError, error_body
from fngw.manifest import CorsSettings, KernelApiSettings, join_url

from . import resources
from .channels import MAX_QUEUE, V1_PROTOCOL, ChannelHub, WebSocket
from .registry import KernelRegistry, NotFound
from .sessions import SessionStore

__all__ = ["KernelApi", "KernelRegistry"]

_WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class KernelApi:
    def __init__(
        self,
        settings: KernelApiSettings,
        registry: KernelRegistry,
        cors: CorsSettings | None,
        base_url: str,
        max_websocket_queue: int = MAX_QUEUE,
    ):
        self.settings = settings
        self.max_websocket_queue = max_websocket_queue
        self.registry = registry
        self.sessions = SessionStore(registry)
        self.cors = cors
        self.base_url = base_url
        self.hubs: dict[str, ChannelHub] = {}

    def routes(self) -> list[tuple[str, Any]]:
        access, cors, registry, base = self.settings.auth, self.cors, self.registry, self.base_url
        specs = resources.KernelSpecs(access, cors, registry, base)
        sessions = resources.Sessions(access, cors, self.sessions, base)
        return [
            (join_url(base, "api"), resources.ApiRoot(access, cors)),
            (join_url(base, "api/kernelspecs"), specs),
            (join_url(base, "api/kernelspecs/{name}"), specs),
            (join_url(base, "kernelspecs/{name}/{filename}"), resources.KernelSpecFile(access, cors, registry)),
            (join_url(base, "api/kernels"), resources.Kernels(access, cors, registry, base)),
            (join_url(base, "api/kernels/{kernel_id}"), resources.Kernel(access, cors, registry)),
            (join_url(base, "api/kernels/{kernel_id}/{action}"), resources.KernelAction(access, cors, registry)),
            (join_url(base, "api/sessions"), sessions),
            (join_url(base, "api/sessions/{session_id}"), sessions),
        ]

    def close_websockets(self) -> None:
        """Tell every websocket client that the gateway is going away."""
        for hub in list(self.hubs.values()):
            for ws in list(hub.connections.values()):
                ws.close(1001, "the gateway is shutting down")

    def channels_path_kernel(self, path: str) -> str | None:
        """The kernel id if ``path`` is ``{base}/api/kernels/{id}/channels``."""
        prefix = join_url(self.base_url, "api/kernels") + "/"
        if path.startswith(prefix) and path.endswith("/channels"):
            kernel_id = path[len(prefix) : -len("/channels")]
            if kernel_id and "/" not in kernel_id:
                return kernel_id
        return None

    def open_channels(
        self,
        environ: dict[str, Any],
        start_response: Callable,
        kernel_id: str,
        authorize: Callable[[falcon.Request], None],
    ) -> list[bytes] | None:
        """Check and upgrade a websocket request, then serve it until it closes (returns None). A
        request that cannot be upgraded gets a plain HTTP answer (401, 403, 404, 400): its body is
        returned, for the WSGI server to send."""
        req = falcon.Request(environ)
        try:
            authorize(req)
            resources.ApiResource(self.settings.auth, self.cors).check_origin(req)
            entry = self.registry.get(kernel_id)
            if (req.get_header("Upgrade") or "").lower() != "websocket" or not req.get_header("Sec-WebSocket-Key"):
                raise GatewayError(falcon.HTTP_400, "Bad Request", 'Can "Upgrade" only to "WebSocket".')
            sock = environ.get("gunicorn.socket")
            if sock is None:
                raise GatewayError(falcon.HTTP_400, "Bad Request", "websockets need fngw's gunicorn worker")
        except NotFound as exc:
            return _plain(start_response, GatewayError(falcon.HTTP_404, "Not Found", str(exc)))
        except GatewayError as exc:
            return _plain(start_response, exc)
        offered = [p.strip() for p in (req.get_header("Sec-WebSocket-Protocol") or "").split(",") if p.strip()]
        v1 = V1_PROTOCOL in offered
        accept = base64.b64encode(hashlib.sha1((req.get_header("Sec-WebSocket-Key") + _WS_GUID).encode()).digest())
        head = [
            "HTTP/1.1 101 Switching Protocols",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Accept: {accept.decode()}",
        ]
        if v1:
            head.append(f"Sec-WebSocket-Protocol: {V1_PROTOCOL}")
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
        session_id = (parse_qs(req.query_string).get("session_id") or [""])[0] or f"anonymous-{id(sock)}"
        hub = self.hubs.get(kernel_id)
        if hub is None or hub.entry is not entry:
            hub = self.hubs[kernel_id] = ChannelHub(entry, self.max_websocket_queue)
        try:
            WebSocket(sock, session_id, v1, max_queue=self.max_websocket_queue).serve(hub)
        finally:
            self._forget_idle_hubs()
        return None

    def _forget_idle_hubs(self) -> None:
        """Drop the hubs of kernels this worker no longer holds once nobody is connected to them
        (a deleted or replaced kernel's hub would otherwise keep it in memory)."""
        for kernel_id, hub in list(self.hubs.items()):
            if not hub.connections and self.registry.kernels.get(kernel_id) is not hub.entry:
                del self.hubs[kernel_id]


def _plain(start_response: Callable, error: GatewayError) -> list[bytes]:
    body = json.dumps(error_body(error)).encode()
    headers = [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    headers += list((error.headers or {}).items())
    start_response(falcon.code_to_http_status(error.status), headers)
    return [body]
