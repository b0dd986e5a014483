"""One worker serves all of a kernel's websockets: the one that answers for the kernel.

Within an instance any worker may receive a kernel's websocket (the operating system hands each
new connection to any worker). A worker that does not answer for the kernel splices the
connection, byte for byte, to the worker that does, through that worker's private Unix socket in
the instance folder. So one worker holds the kernel's websocket clients: what a disconnected
session missed is replayed whichever worker its reconnection reaches, and the kernel's output is
read and fanned out once per instance rather than once per worker.

The private socket takes connections already checked by the worker that spliced them (routing,
token, origin, CORS ran in its Falcon application); the folder is the instance's (mode 0700).
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import gevent.server
import gevent.socket
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, RejectConnection, Request
from wsproto.utilities import RemoteProtocolError

from fngw.kernels import pid_alive

from .errors import KernelApiError, RegistryUnavailable
from .framing import V1_PROTOCOL
from .hubs import ChannelHubs
from .owners import noted_owner
from .registry import KernelRegistry

log = logging.getLogger("fngw.kernel_api")

MAX_HEAD = 64 * 1024  # bytes of a spliced upgrade request's head
HEAD_TIMEOUT = 10.0  # seconds to receive it


class WorkerHandoff:
    """This worker's private socket (``folder/<pid>.sock``) and the way to the others'."""

    def __init__(self, folder: Path, registry: KernelRegistry, hubs: ChannelHubs):
        self.folder = folder
        self.registry = registry
        self.hubs = hubs
        self._server: gevent.server.StreamServer | None = None

    def path_of(self, pid: int) -> Path:
        """Where worker ``pid`` takes spliced websockets."""
        return self.folder / f"{pid}.sock"

    def start(self) -> None:
        """Listen on this worker's socket (in the worker, after the fork)."""
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        path = self.path_of(os.getpid())
        with contextlib.suppress(FileNotFoundError):
            path.unlink()  # a worker of an earlier master with the same pid
        listener = gevent.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(str(path))
        listener.listen(128)
        self._server = gevent.server.StreamServer(listener, self._serve)
        self._server.start()

    def stop(self) -> None:
        """Take no more spliced websockets (those being served go on until they close)."""
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(OSError):
                self.path_of(os.getpid()).unlink()

    def owner_elsewhere(self, kernel_id: str) -> Path | None:
        """The socket of the other worker of this instance that answers for ``kernel_id``, or None
        when this worker should serve its websocket itself (it answers for it, or nobody alive
        does, or another instance runs it)."""
        shared = self.registry.shared
        if shared is None:
            return None
        try:
            record = shared.read(kernel_id)
        except RegistryUnavailable:  # this instance's own kernels stay reachable: the folder's note
            owner = noted_owner(self.folder, kernel_id)
            if owner is None:
                raise
            record = {"id": kernel_id, "owner": owner}
        if record is None or record.get("pending") or shared.instance_of(record) is not None:
            return None
        owner = record.get("owner")
        if not isinstance(owner, int) or owner == os.getpid() or not pid_alive(owner):
            return None
        path = self.path_of(owner)
        return path if path.exists() else None

    def _serve(self, sock: Any, _address: Any) -> None:
        head = b""
        sock.settimeout(HEAD_TIMEOUT)  # a splicing worker that died mid-request must not hold this one
        try:
            while b"\r\n\r\n" not in head:
                data = sock.recv(4096)
                if not data or len(head) > MAX_HEAD:
                    sock.close()
                    return
                head += data
        except OSError:
            sock.close()
            return
        sock.settimeout(None)
        ws = WSConnection(ConnectionType.SERVER)
        try:
            ws.receive_data(head)
            request = next(e for e in ws.events() if isinstance(e, Request))
        except (RemoteProtocolError, StopIteration):
            sock.close()
            return
        target = urlsplit(request.target)
        parts = unquote(target.path).rstrip("/").split("/")
        kernel_id = parts[-2] if len(parts) >= 2 else ""
        try:
            api_kernel = self.registry.get(kernel_id)
        except KernelApiError as exc:
            sock.sendall(ws.send(RejectConnection(status_code=404, headers=[(b"content-length", b"0")])))
            log.info("websocket handed over for kernel %s refused: %s", kernel_id, exc)
            sock.close()
            return
        v1 = V1_PROTOCOL in request.subprotocols
        extra = [(n, v) for n, v in request.extra_headers if n.lower() == b"x-request-id"]
        sock.sendall(ws.send(AcceptConnection(subprotocol=V1_PROTOCOL if v1 else None, extra_headers=extra)))
        session_id = (parse_qs(target.query).get("session_id") or [""])[0] or f"anonymous-{id(sock)}"
        self.hubs.serve(sock, ws, api_kernel, session_id, v1)
