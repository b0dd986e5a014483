"""REST resources of the kernel API (Jupyter Kernel Gateway's jupyter-websocket mode)."""

from __future__ import annotations

import json
import mimetypes
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import falcon
import gevent.socket
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, Request
from wsproto.utilities import RemoteProtocolError

from fngw import __version__
from fngw.auth import Guarded
from fngw.http.body import read_body
from fngw.http.cors import origin_allowed, same_origin
from fngw.http.disconnect import abandon_if_client_leaves
from fngw.http.environ import RAW_HEADERS, TAKE_OVER
from fngw.http.errors import GatewayError
from fngw.kernels import match_kernelspec
from fngw.manifest import Access, CorsSettings

from .errors import HostedElsewhere, NotFound
from .framing import V1_PROTOCOL
from .handoff import WorkerHandoff
from .hubs import ChannelHubs
from .registry import KernelRegistry
from .relay import RELAYED_HEADER, splice, splice_websocket
from .sessions import SessionStore

T = TypeVar("T")


def while_client_waits(req: falcon.Request, start: Callable[[], T]) -> T:
    """``start()`` (which starts a kernel), abandoned if the client hangs up meanwhile: the start
    is interrupted and what it launched is killed, so no kernel is left that nobody holds. The
    client gets (if it still listens) a 499 (``ClientGone``, see fngw.server.error_map)."""
    with abandon_if_client_leaves(req):
        return start()


MAX_JSON_BODY = 1024 * 1024  # kernel API requests are small; a chunked body must not be read unbounded


def json_body(req: falcon.Request) -> dict[str, Any]:
    """The request's JSON object ({} for an empty body): 400 for anything else, 413 past
    ``MAX_JSON_BODY`` bytes (``read_body``, which also answers a malformed chunked body with 400)."""
    data = read_body(req, MAX_JSON_BODY)
    if not data.strip():
        return {}
    try:
        body = json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise GatewayError(400, message="Invalid JSON in body of request") from None
    if not isinstance(body, dict):
        raise GatewayError(400, message="the body must be a JSON object")
    return body


class ApiResource(Guarded):
    """Shared by every kernel API resource: its access rule and the cross-origin check."""

    def __init__(self, access: Access, cors: CorsSettings | None):
        self.access = access
        self.cors = cors

    def check_origin(self, req: falcon.Request) -> None:
        """Code runs in these kernels: a web page of another origin must not drive them from a
        user's browser unless the manifest's CORS settings allow that origin."""
        origin = req.get_header("Origin")
        if origin is None:
            return
        if same_origin(req, origin) or origin_allowed(origin, self.cors.allow_origin if self.cors else None):
            return
        raise GatewayError(403, message=f"cross-origin requests from {origin} are not allowed")


def _origin_checked(req: falcon.Request, resp: falcon.Response, resource: object, params: dict[str, Any]) -> None:
    """Falcon hook of every kernel API responder: the cross-origin check (``check_origin``)."""
    assert isinstance(resource, ApiResource)
    resource.check_origin(req)


class RegistryResource(ApiResource):
    """A kernel API resource that works on the worker's kernel registry."""

    def __init__(self, access: Access, cors: CorsSettings | None, registry: KernelRegistry, base_url: str = "/"):
        super().__init__(access, cors)
        self.registry = registry
        self.base_url = base_url.rstrip("/")


@falcon.before(_origin_checked)
class ApiRoot(ApiResource):
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = {"version": __version__, "gateway": "fngw"}


@falcon.before(_origin_checked)
class KernelSpecs(RegistryResource):
    def on_get(self, req: falcon.Request, resp: falcon.Response, name: str | None = None) -> None:
        kernelspecs = self.registry.kernelspecs
        models = kernelspecs.models(self.base_url)
        if name is None:
            default = match_kernelspec(self.registry.settings.default_kernel, models)
            resp.media = {"default": default or self.registry.settings.default_kernel, "kernelspecs": models}
            return
        found = kernelspecs.installed_name(name)
        if found not in models:  # allowed and installed, yet jupyter_client could not read it
            raise NotFound(f"kernelspec {found!r} could not be read")
        resp.media = models[found]


@falcon.before(_origin_checked)
class KernelSpecFile(RegistryResource):
    def on_get(self, req: falcon.Request, resp: falcon.Response, name: str, filename: str) -> None:
        target = self.registry.kernelspecs.resource_file(name, filename)
        resp.content_type = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
        resp.cache_control = ["max-age=3600"]
        resp.set_stream(target.open("rb"), target.stat().st_size)  # Falcon closes it after sending


@falcon.before(_origin_checked)
class KernelCollection(RegistryResource):
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        if not self.registry.settings.list_kernels:
            raise GatewayError(403, message="listing kernels is off (kernel_api.list_kernels)")
        resp.media = [entry.model() for entry in self.registry.entries()]

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = json_body(req)
        for key in ("name", "path", "kernel_id"):
            if body.get(key) is not None and not isinstance(body[key], str):
                raise GatewayError(400, message=f"{key} must be a string")
        entry = while_client_waits(
            req,
            lambda: self.registry.start_kernel(
                body.get("name"), body.get("env"), body.get("path"), body.get("kernel_id")
            ),
        )
        resp.status = falcon.HTTP_201
        resp.location = f"{self.base_url}/api/kernels/{entry.id}"
        resp.media = entry.model()


@falcon.before(_origin_checked)
class KernelItem(RegistryResource):
    def on_get(self, req: falcon.Request, resp: falcon.Response, kernel_id: str) -> None:
        resp.media = self.registry.lookup(kernel_id).model()

    def on_delete(self, req: falcon.Request, resp: falcon.Response, kernel_id: str) -> None:
        self.registry.delete(kernel_id)
        resp.status = falcon.HTTP_204


@falcon.before(_origin_checked)
class KernelAction(RegistryResource):
    def on_post(self, req: falcon.Request, resp: falcon.Response, kernel_id: str, action: str) -> None:
        if action == "interrupt":
            self.registry.interrupt(kernel_id)
            resp.status = falcon.HTTP_204
        elif action == "restart":
            resp.media = self.registry.restart(kernel_id).model()
        else:
            raise GatewayError(404, message=f"no kernel action {action!r}")


@falcon.before(_origin_checked)
class Sessions(ApiResource):
    def __init__(self, access: Access, cors: CorsSettings | None, store: SessionStore, base_url: str):
        super().__init__(access, cors)
        self.store = store
        self.base_url = base_url.rstrip("/")

    # The collection (/api/sessions) and an item (/api/sessions/{id}, Falcon's suffix="item"):
    # Falcon answers 405 with Allow for the methods each does not have.

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        """GET /api/sessions: every session's model; 403 unless kernel_api.list_kernels."""
        if not self.store.registry.settings.list_kernels:
            raise GatewayError(403, message="listing sessions is off (kernel_api.list_kernels)")
        resp.media = self.store.list()

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        """POST /api/sessions: 201 with the session for the body's path (its kernel started)."""
        body = json_body(req)
        model = while_client_waits(req, lambda: self.store.create(body))
        resp.status = falcon.HTTP_201
        resp.location = f"{self.base_url}/api/sessions/{model['id']}"
        resp.media = model

    def on_get_item(self, req: falcon.Request, resp: falcon.Response, session_id: str) -> None:
        """GET /api/sessions/{id}: the session's model."""
        resp.media = self.store.get(session_id)

    def on_patch_item(self, req: falcon.Request, resp: falcon.Response, session_id: str) -> None:
        """PATCH /api/sessions/{id}: change its path, name, type or kernel."""
        resp.media = self.store.update(session_id, json_body(req))

    def on_delete_item(self, req: falcon.Request, resp: falcon.Response, session_id: str) -> None:
        """DELETE /api/sessions/{id}: 204; its kernel is deleted with it."""
        self.store.delete(session_id)
        resp.status = falcon.HTTP_204


@falcon.before(_origin_checked)
class Channels(RegistryResource):
    """``GET /api/kernels/{kernel_id}/channels``: the websocket upgrade, checked like every other
    request (routing, token, origin, CORS, request id, access log, metrics), the handshake done by
    wsproto; then the socket is taken over from the server and served until it closes."""

    def __init__(
        self,
        access: Access,
        cors: CorsSettings | None,
        registry: KernelRegistry,
        hubs: ChannelHubs,
        handoff: WorkerHandoff | None = None,
    ):
        super().__init__(access, cors, registry)
        self.hubs = hubs
        self.handoff = handoff  # to the worker of this instance that answers for the kernel

    def on_get(self, req: falcon.Request, resp: falcon.Response, kernel_id: str) -> None:
        api_kernel, relay_to = None, None
        owner = self.handoff.owner_elsewhere(kernel_id) if self.handoff is not None else None
        if owner is not None and self._hand_over(req, resp, owner):
            return
        try:
            api_kernel = self.registry.get(kernel_id)
        except HostedElsewhere as elsewhere:
            if req.get_header(RELAYED_HEADER) is not None:  # the records disagree: never relay twice
                raise
            relay_to = elsewhere.address
        if (req.get_header("Upgrade") or "").lower() != "websocket" or not req.get_header("Sec-WebSocket-Key"):
            raise GatewayError(400, message='Can "Upgrade" only to "WebSocket".')  # Kernel Gateway's words
        take_over = req.env.get(TAKE_OVER)
        if take_over is None:
            raise GatewayError(400, message="websockets need fngw's gunicorn worker")
        if relay_to is not None:  # another instance runs it: that instance answers the upgrade
            resp.status = falcon.HTTP_101  # for the access log: the server sends nothing more
            splice_websocket(req, take_over, relay_to)
            return
        assert api_kernel is not None
        ws = WSConnection(ConnectionType.SERVER)
        raw = req.env.get(RAW_HEADERS) or list(req.headers.items())
        try:
            ws.initiate_upgrade_connection(
                [(n.encode("latin-1"), v.encode("latin-1")) for n, v in raw], req.relative_uri
            )
            handshake = next(e for e in ws.events() if isinstance(e, Request))
        except (RemoteProtocolError, StopIteration, UnicodeEncodeError) as exc:
            raise GatewayError(400, message=f"not a valid websocket handshake: {exc}") from None
        v1 = V1_PROTOCOL in handshake.subprotocols
        sock = take_over()
        # The 101 goes out on the socket itself, so the headers middleware set (X-Request-Id) go with it.
        extra = [
            (n.encode("latin-1"), v.encode("latin-1")) for n, v in resp.headers.items() if n.lower() == "x-request-id"
        ]
        sock.sendall(ws.send(AcceptConnection(subprotocol=V1_PROTOCOL if v1 else None, extra_headers=extra)))
        resp.status = falcon.HTTP_101  # for the access log: the server sends nothing more
        session_id = req.get_param("session_id") or f"anonymous-{id(sock)}"
        self.hubs.serve(sock, ws, api_kernel, session_id, v1)

    def _hand_over(self, req: falcon.Request, resp: falcon.Response, owner: Path) -> bool:
        """Splice the upgrade to the worker listening at ``owner``; False (serve it here) when that
        worker cannot be reached or this is not an upgrade fngw's worker can take over."""
        take_over = req.env.get(TAKE_OVER)
        if take_over is None or (req.get_header("Upgrade") or "").lower() != "websocket":
            return False
        upstream = gevent.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            upstream.connect(str(owner))
        except OSError:
            upstream.close()
            return False
        resp.status = falcon.HTTP_101  # for the access log: the server sends nothing more
        splice(req, take_over, upstream, "localhost")
        return True
