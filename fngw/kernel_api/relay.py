"""Reaching the kernels other instances of the deployment run (issue 17, Redis registry).

An instance that is asked about a kernel another instance runs *relays*: REST calls become the
same call to that instance (``HttpPeers``: get, delete, interrupt, restart), and a websocket is
spliced to it byte for byte (``splice_websocket``): the client's upgrade request goes on to the
instance that runs the kernel, whose answer, handshake and frames come back unchanged. Kernels
therefore only ever talk ZeroMQ to their own instance, and instances need to reach each other only
on the gateway's HTTP port (docs/kernel-api.md, Several instances).

Instances vouch for their own calls with a secret kept in the registry (``X-Fngw-Peer``): the
calling instance has already checked the client's token. A relayed websocket carries the client's
own credentials instead, which the receiving instance checks again.
"""

from __future__ import annotations

import contextlib
import hmac
import http.client
import json
import socket
from collections.abc import Callable
from typing import Any, cast
from urllib.parse import quote, urlsplit

import falcon
import gevent
import gevent.socket

from fngw.auth.middleware import PEER_HEADER
from fngw.http.environ import RAW_HEADERS

from .errors import NotFound, PeerUnavailable
from .models import KernelModel

RELAYED_HEADER = "X-Fngw-Relayed"  # on a spliced websocket upgrade: never relay it again
CHUNK = 256 * 1024


class HttpPeers:
    """The other instances, over HTTP at the address each publishes (``http://host:port``).
    ``token`` gives the deployment's peer secret; ``base_url`` is the manifest's; ``timeout``
    (seconds) bounds every call (a restart waits for the kernel to start again)."""

    def __init__(self, token: Callable[[], str], base_url: str = "/", timeout: float = 90.0):
        self._token = token
        self._secret: str | None = None
        self.base_url = base_url.rstrip("/") + "/"
        self.timeout = timeout

    def token(self, fresh: bool = False) -> str:
        """The peer secret, read from the registry once (again when ``fresh``: a registry that lost
        its data has made a new one)."""
        if self._secret is None or fresh:
            self._secret = self._token()
        return self._secret

    def trusts(self, presented: str) -> bool:
        """Whether ``presented`` is the peer secret (a call from another instance)."""
        try:
            if hmac.compare_digest(presented.encode(), self.token().encode()):
                return True
            return hmac.compare_digest(presented.encode(), self.token(fresh=True).encode())
        except Exception:  # the registry is unreachable: nobody is trusted meanwhile
            return False

    def _call(self, address: str, method: str, path: str) -> Any:
        answer, body = self._send(address, method, path, self.token())
        if answer.status == 401:  # the registry lost its data and has a new secret since
            answer, body = self._send(address, method, path, self.token(fresh=True))
        try:
            document = json.loads(body) if body else None
        except ValueError:
            document = None
        message = document.get("message") if isinstance(document, dict) else None
        if answer.status == 404:
            raise NotFound(message or f"not found at {address}")
        if answer.status >= 400:
            raise PeerUnavailable(f"the instance at {address} answered {answer.status}: {message or body[:200]!r}")
        return document

    def _send(self, address: str, method: str, path: str, token: str) -> tuple[http.client.HTTPResponse, bytes]:
        where = urlsplit(address)
        conn = http.client.HTTPConnection(where.hostname or "", where.port or 80, timeout=self.timeout)
        try:
            conn.request(
                method,
                self.base_url + path,
                body=b"{}" if method == "POST" else None,
                headers={PEER_HEADER: token, "Content-Type": "application/json"},
            )
            answer = conn.getresponse()
            return answer, answer.read()
        except OSError as exc:
            raise PeerUnavailable(f"the instance at {address} that runs the kernel cannot be reached: {exc}") from None
        finally:
            conn.close()

    def model(self, address: str, kernel_id: str, /) -> KernelModel:
        """GET the kernel's model from the instance that runs it."""
        return cast(KernelModel, self._call(address, "GET", f"api/kernels/{quote(kernel_id, safe='')}"))

    def delete(self, address: str, kernel_id: str, /) -> None:
        """DELETE the kernel on the instance that runs it."""
        self._call(address, "DELETE", f"api/kernels/{quote(kernel_id, safe='')}")

    def interrupt(self, address: str, kernel_id: str, /) -> None:
        """Interrupt the kernel on the instance that runs it."""
        self._call(address, "POST", f"api/kernels/{quote(kernel_id, safe='')}/interrupt")

    def restart(self, address: str, kernel_id: str, /) -> KernelModel:
        """Restart the kernel on the instance that runs it; its model after the restart."""
        return cast(KernelModel, self._call(address, "POST", f"api/kernels/{quote(kernel_id, safe='')}/restart"))


def splice_websocket(req: falcon.Request, take_over: Callable[[], socket.socket], address: str) -> None:
    """Hand the websocket upgrade ``req`` to the instance at ``address`` and copy bytes both ways
    until either side closes. Raises ``PeerUnavailable`` (before taking the connection over) when
    that instance cannot be reached; afterwards the client sees that instance's answers only."""
    where = urlsplit(address)
    host, port = where.hostname or "", where.port or 80
    try:
        upstream = gevent.socket.create_connection((host, port), timeout=10)
    except OSError as exc:
        raise PeerUnavailable(f"the instance at {address} that runs the kernel cannot be reached: {exc}") from None
    splice(req, take_over, upstream, f"{host}:{port}")


def splice(req: falcon.Request, take_over: Callable[[], socket.socket], upstream: socket.socket, host: str) -> None:
    """Send the upgrade request ``req`` (its raw headers, marked as relayed, with the request id
    this gateway gave it) on the connected ``upstream``, take the client's connection over, and
    copy bytes both ways until either side closes. The client's own ``Host`` goes on unchanged:
    the receiving side checks ``Origin`` against it, as this side did (``host`` only stands in for
    a client that sent none)."""
    raw = req.env.get(RAW_HEADERS) or list(req.headers.items())
    request_id = getattr(req.context, "request_id", None)
    sent_host = next((value for name, value in raw if name.lower() == "host"), None)
    lines = [f"GET {req.relative_uri} HTTP/1.1", f"Host: {sent_host or host}", f"{RELAYED_HEADER}: 1"]
    skip = ("host", RELAYED_HEADER.lower(), "x-request-id")
    lines += [f"{name}: {value}" for name, value in raw if name.lower() not in skip]
    if request_id:
        lines.append(f"X-Request-Id: {request_id}")
    upstream.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
    upstream.settimeout(None)
    client = take_over()
    for sock in (client, upstream):  # frames are copied as they come: no 40 ms Nagle waits
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def pump(source: socket.socket, target: socket.socket) -> None:
        try:
            while data := source.recv(CHUNK):
                target.sendall(data)
        except OSError:
            pass
        finally:  # one side closed: close the other, which ends the other pump too
            for sock in (source, target):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    back = gevent.spawn(pump, upstream, client)
    try:
        pump(client, upstream)
        back.join()
    finally:
        back.kill(block=False)
        upstream.close()
