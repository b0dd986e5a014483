"""Websocket channels of a kernel: many clients share one set of kernel sockets.

``ChannelHub`` (one per kernel per worker) sends client messages to the kernel, re-signed with the
kernel's key, remembers which session sent each request, routes shell, control and stdin replies
back to that session's connection and broadcasts iopub to every connection. A session that
disconnects has its messages buffered (bounded) and replayed when it reconnects with the same
``session_id``.

``WebSocket`` is one client connection over wsproto on a gevent socket: one reader, one writer
greenlet fed by a queue (concurrent sends are safe), pings to notice dead peers, a message size
limit answered with close code 1009, protocol errors with 1002. Both framings are supported: the
legacy JSON text frames (binary when a message has buffers) and ``v1.kernel.websocket.jupyter.org``.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import struct
import time
import uuid
from collections import OrderedDict
from datetime import datetime, timezone
from typing import Any

import gevent
import gevent.queue
from wsproto import WSConnection
from wsproto.connection import Connection, ConnectionType
from wsproto.events import BytesMessage, CloseConnection, Ping, Pong, TextMessage
from wsproto.utilities import LocalProtocolError, RemoteProtocolError

from fngw.kernels import Kernel, KernelError
from fngw.kernels.protocol import Message

from .framing import decode_legacy, decode_v1, encode_legacy, encode_v1
from .registry import ApiKernel, KernelRegistry
from .replay import ReplayBuffer

log = logging.getLogger("fngw.kernel_api")

CHANNELS = ("shell", "control", "stdin", "iopub")
MAX_MESSAGE = 128 * 1024 * 1024
PING_INTERVAL = 30.0
MAX_QUEUE = 16 * 1024 * 1024  # bytes queued for one connection (server.max_websocket_queue)
STALL_GRACE = 2.0  # seconds a dropped connection's close frame may take before its socket is shut
REPLAY_SESSIONS = 16  # disconnected sessions kept for replay at once; the oldest goes first
REPLAY_SECONDS = 120.0  # how long a disconnected session's messages are kept
ROUTE_LIMIT = 100_000  # request ids remembered for reply routing
BROADCAST_SLICE = 200  # connections served between two yields of an iopub broadcast


class ChannelHub:
    """All websocket connections of one kernel in this worker."""

    def __init__(self, entry: ApiKernel, max_queue: int = MAX_QUEUE):
        self.entry = entry
        self.max_queue = max_queue
        self.connections: dict[str, WebSocket] = {}
        self.offline: OrderedDict[str, ReplayBuffer] = OrderedDict()
        self.routes: OrderedDict[str, str] = OrderedDict()
        entry.kernel.on_iopub(self._iopub)
        entry.kernel.on_message(self._reply)
        entry.status_listeners.append(self._status)

    def attach(self, ws: WebSocket) -> None:
        """Serve ws: a second connection of the same session replaces the first, and what the session
        missed while away is replayed."""
        old = self.connections.get(ws.session_id)
        if old is not None:
            old.close(1000, "replaced by a newer connection of the same session")
        self.connections[ws.session_id] = ws
        self.entry.connections = len(self.connections)
        missed = self.offline.pop(ws.session_id, None)
        if missed is not None and missed.dropped:
            log.info("websocket %s: %d older messages were dropped while it was away", ws.session_id, missed.dropped)
        for channel, msg in missed or ():
            ws.send(channel, msg)

    def detach(self, ws: WebSocket) -> None:
        """ws is gone: its session's messages are kept for a replay from now on (bounded)."""
        if self.connections.get(ws.session_id) is ws:
            del self.connections[ws.session_id]
            buffered = self.offline[ws.session_id] = ReplayBuffer(self.max_queue)
            for channel, msg in getattr(ws, "unsent_replies", ()):  # a dropped client keeps its replies
                buffered.append(channel, msg)
            while len(self.offline) > REPLAY_SESSIONS:
                self.offline.popitem(last=False)
        self.entry.connections = len(self.connections)

    def _expire_offline(self) -> None:
        """Forget sessions that have not come back in time: a client that left for good must not
        keep collecting messages."""
        deadline = time.monotonic() - REPLAY_SECONDS
        while self.offline:
            session_id, buffered = next(iter(self.offline.items()))
            if buffered.since > deadline:
                break
            del self.offline[session_id]

    def from_client(self, ws: WebSocket, msg: Message) -> None:
        """Send a client's message to the kernel on its channel, remembering which session asked (for the reply)."""
        channel = msg.pop("channel", None) or "shell"
        if channel not in ("shell", "control", "stdin"):
            log.warning("dropping a client message for channel %r", channel)
            return
        header = msg.get("header")
        if not isinstance(header, dict) or "msg_id" not in header or "msg_type" not in header:
            ws.error("a message needs a header with msg_id and msg_type")
            return
        msg.setdefault("parent_header", {})
        msg.setdefault("metadata", {})
        msg.setdefault("content", {})
        self.routes[header["msg_id"]] = ws.session_id
        if len(self.routes) > ROUTE_LIMIT:
            self.routes.popitem(last=False)
        self.entry.touch()
        try:
            self.entry.kernel.send_message(channel, msg)
        except KernelError as exc:
            ws.error(f"the kernel is not running: {exc}")

    def _deliver(self, session_id: str, channel: str, msg: Message) -> None:
        ws = self.connections.get(session_id)
        if ws is not None and ws.closed:  # closing (dropped, or its client left): the replay keeps it
            self.detach(ws)
            ws = None
        if ws is not None:
            ws.send(channel, msg)
        elif session_id in self.offline:
            self.offline[session_id].append(channel, msg)

    def _reply(self, kernel: Kernel, channel: str, msg: Message) -> None:
        parent = (msg.get("parent_header") or {}).get("msg_id")
        session_id = self.routes.get(parent) if parent else None
        if session_id is not None:
            self._deliver(session_id, channel, msg)

    def _iopub(self, kernel: Kernel | None, msg: Message) -> None:
        encoded: dict = {}
        for i, ws in enumerate(list(self.connections.values()), 1):
            if ws.closed:  # closing: from now on its session's messages go to the replay
                self.detach(ws)
                continue
            ws.send("iopub", msg, encoded)
            if i % BROADCAST_SLICE == 0:
                # Let replies and other requests run between slices of a large broadcast. Order is
                # kept: this greenlet (the kernel's iopub reader) reads no next message meanwhile.
                gevent.sleep(0)
        self._expire_offline()
        for buffered in self.offline.values():
            buffered.append("iopub", msg)

    def _status(self, state: str) -> None:
        if state == "detached":  # another worker restarted the kernel: reconnecting reaches it anew
            for ws in list(self.connections.values()):
                ws.close(1012, "the kernel was restarted; reconnect")
            return
        now = datetime.now(timezone.utc)
        msg: Message = {
            "header": {
                "msg_id": str(uuid.uuid4()),
                "msg_type": "status",
                "username": "fngw",
                "session": "fngw",
                "date": now,
                "version": "5.3",
            },
            "parent_header": {},
            "metadata": {},
            "content": {"execution_state": state},
            "buffers": [],
        }
        self._iopub(None, msg)
        if state == "dead":
            for ws in list(self.connections.values()):
                ws.close(1011, "the kernel died")


class WebSocket:
    """One websocket client on an upgraded gevent socket."""

    def __init__(
        self,
        sock: socket.socket,
        session_id: str,
        v1: bool,
        max_message: int = MAX_MESSAGE,
        max_queue: int = MAX_QUEUE,
        connection: WSConnection | Connection | None = None,
    ):
        self.sock = sock
        self.session_id = session_id
        self.v1 = v1
        self.max_message = max_message
        self.max_queue = max_queue
        self.queued = 0  # bytes in the outbox and in the frame being written
        # The wsproto connection that did the handshake (or a bare one for an already open socket).
        self.ws = connection if connection is not None else Connection(ConnectionType.SERVER)
        self.outbox: gevent.queue.Queue = gevent.queue.Queue()
        self.replies: dict[int, tuple[str, Message]] = {}  # id(queued event) -> reply not yet sent
        self.unsent_replies: list[tuple[str, Message]] = []  # replies of a dropped connection
        self.closed = False
        self.last_seen = time.monotonic()
        if getattr(sock, "family", None) in (socket.AF_INET, socket.AF_INET6):  # (not a handoff socket)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # no 40 ms Nagle waits on replies

    def send(self, channel: str, msg: Message, encoded: dict | None = None) -> None:
        """Queue ``msg``; ``encoded`` caches the framed event across connections (a broadcast is
        encoded once per framing, not once per connection)."""
        if self.closed:
            return
        cache = encoded if encoded is not None else {}
        event = cache.get(self.v1)
        if event is None:
            if self.v1:
                event = BytesMessage(data=encode_v1(msg, channel))
            else:
                binary, payload = encode_legacy(msg, channel)
                event = BytesMessage(data=payload) if binary else TextMessage(data=payload.decode())
            cache[self.v1] = event
        size = len(event.data)
        if self.queued and self.queued + size > self.max_queue:  # one message alone always fits
            self._drop_slow_client()
            return
        self.queued += size
        self.outbox.put(event)
        if channel != "iopub":  # a reply: kept for replay if the client is dropped before it is sent
            self.replies[id(event)] = (channel, msg)

    def _drop_slow_client(self) -> None:
        """The client reads slower than its kernel writes and ``max_queue`` bytes wait for it:
        forget them, close with 1008 and, if the close frame cannot be written in time either (the
        client stopped reading), shut the socket. Reconnecting with the same session id replays
        what the hub kept meanwhile."""
        log.warning(
            "websocket %s: more than %d bytes queued for a client that does not keep up; disconnecting it",
            self.session_id,
            self.max_queue,
        )
        while not self.outbox.empty():
            event = self.outbox.get_nowait()
            reply = self.replies.pop(id(event), None)
            if reply is not None:  # replies survive: the hub replays them when the session returns
                self.unsent_replies.append(reply)
        self.queued = 0
        self.close(1008, f"the client fell more than {self.max_queue} bytes behind; reconnect to resume")
        self.closed = True
        gevent.spawn_later(STALL_GRACE, self._shut)

    def _shut(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)

    def error(self, text: str) -> None:
        """Log a dropped client message (the client is told nothing: the connection stays open)."""
        log.warning("websocket %s: %s", self.session_id, text)

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Queue a close frame with code and reason (once)."""
        if not self.closed:
            self.outbox.put(CloseConnection(code=code, reason=reason))

    def _writer(self) -> None:
        while True:
            event = self.outbox.get()
            self.replies.pop(id(event), None)
            try:
                data = self.ws.send(event)
                self.sock.sendall(data)
            except (OSError, LocalProtocolError):
                self.closed = True
                return
            finally:
                if isinstance(event, TextMessage | BytesMessage):
                    self.queued = max(0, self.queued - len(event.data))
            if isinstance(event, CloseConnection):
                self.closed = True
                return

    def _pinger(self) -> None:
        while not self.closed:
            gevent.sleep(PING_INTERVAL)
            if time.monotonic() - self.last_seen > 3 * PING_INTERVAL:
                self.close(1001, "no answer to pings")
                return
            self.outbox.put(Ping(payload=b"fngw"))

    def serve(self, hub: ChannelHub) -> None:
        """Run until either side closes; messages go to ``hub``."""
        writer = gevent.spawn(self._writer)
        pinger = gevent.spawn(self._pinger)
        hub.attach(self)
        parts: list[Any] = []
        size = 0
        try:
            while not self.closed:
                try:
                    data = self.sock.recv(256 * 1024)
                except OSError:
                    break
                if not data:
                    break
                self.last_seen = time.monotonic()
                try:
                    self.ws.receive_data(data)
                    events = list(self.ws.events())
                except RemoteProtocolError as exc:
                    self.close(1002, f"protocol error: {exc}")
                    break
                for event in events:
                    if isinstance(event, TextMessage | BytesMessage):
                        parts.append(event.data)
                        size += len(event.data)
                        if size > self.max_message:
                            self.close(1009, f"message larger than {self.max_message} bytes")
                            parts, size = [], 0
                            break
                        if event.message_finished:
                            payload = "".join(parts) if isinstance(event, TextMessage) else b"".join(parts)
                            parts, size = [], 0
                            self._dispatch(hub, payload)
                    elif isinstance(event, Ping):
                        self.outbox.put(event.response())
                    elif isinstance(event, Pong):
                        pass
                    elif isinstance(event, CloseConnection):
                        self.outbox.put(event.response())
                        self.closed = True
                        break
        finally:
            hub.detach(self)
            self.closed = True
            pinger.kill(block=False)
            writer.join(timeout=2)
            writer.kill(block=False)

    def _dispatch(self, hub: ChannelHub, payload: bytes | str) -> None:
        try:
            msg = decode_v1(payload) if self.v1 and isinstance(payload, bytes) else decode_legacy(payload)
        except (ValueError, UnicodeDecodeError, struct.error, IndexError, RecursionError) as exc:
            self.error(f"dropping a malformed message: {exc}")
            return
        if not isinstance(msg, dict):
            self.error("dropping a message that is not a JSON object")
            return
        hub.from_client(self, msg)


class ChannelHubs:
    """The channel hubs of one worker, one per kernel with websocket clients here."""

    def __init__(self, registry: KernelRegistry, max_queue: int = MAX_QUEUE):
        self.registry = registry
        self.max_queue = max_queue
        self.hubs: dict[str, ChannelHub] = {}

    def serve(self, sock: socket.socket, ws: WSConnection, api_kernel: ApiKernel, session_id: str, v1: bool) -> None:
        """Serve the upgraded websocket ``ws`` on ``sock`` for ``api_kernel`` until either side
        closes it; the framing is ``v1.kernel.websocket.jupyter.org`` when ``v1``, else legacy."""
        hub = self.hubs.get(api_kernel.id)
        if hub is None or hub.entry is not api_kernel:
            hub = self.hubs[api_kernel.id] = ChannelHub(api_kernel, self.max_queue)
        try:
            WebSocket(sock, session_id, v1, max_queue=self.max_queue, connection=ws).serve(hub)
        finally:
            self._forget_idle_hubs()

    def close_all(self, code: int = 1001, reason: str = "the gateway is shutting down") -> None:
        """Close every websocket of this worker (SIGTERM)."""
        for hub in list(self.hubs.values()):
            for ws in list(hub.connections.values()):
                ws.close(code, reason)

    def _forget_idle_hubs(self) -> None:
        """Drop the hubs of kernels this worker no longer holds once nobody is connected to them
        (a deleted or replaced kernel's hub would otherwise keep it in memory)."""
        for kernel_id, hub in list(self.hubs.items()):
            if not hub.connections and self.registry.kernels.get(kernel_id) is not hub.entry:
                del self.hubs[kernel_id]
