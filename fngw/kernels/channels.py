"""The sockets of one kernel process and the greenlets that read them.

Four ZeroMQ sockets (shell, control and stdin as DEALERs, iopub as a SUB), one reader greenlet
each. Every message read is decoded cooperatively (megabytes must not stall the hub) and handed to
``route(channel, msg)``; a malformed or unsigned message is dropped, logged and counted.

The sockets are plain libzmq sockets driven by the gevent hub through ``ChannelSocket`` rather
than ``zmq.green``'s: a gateway request reads five kernel messages, and ``zmq.green`` pays for
each wait with a new timer, a new ``AsyncResult``, a failed non-blocking receive (an exception)
and a state check on every frame; this waits on one persistent watcher instead (measured in
docs/benchmarks.md).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any, cast

import gevent
import gevent.event
import zmq
from jupyter_client.session import Session

from .protocol import Message
from .wire import deserialize_cooperatively

log = logging.getLogger("fngw.kernels")


YIELD_AFTER = 16 * 1024  # bytes of content after which the reader lets other greenlets run
IOPUB_QUEUE = 2  # messages (each at most 256 KiB of stream text) a kernel's iopub may queue here


_EVENTS = int(zmq.EVENTS)
_POLLIN = int(zmq.POLLIN)
_POLLOUT = int(zmq.POLLOUT)
_NOBLOCK = int(zmq.NOBLOCK)


_CONTEXT: list[zmq.Context[zmq.Socket[bytes]]] = []


def _context() -> zmq.Context[zmq.Socket[bytes]]:
    """fngw's own ZeroMQ context, made on first use (in a gunicorn worker: after the fork)."""
    if not _CONTEXT:
        _CONTEXT.append(zmq.Context())
    return _CONTEXT[0]


class ChannelSocket:
    """A libzmq socket that blocks only the calling greenlet.

    libzmq signals its file descriptor (``zmq.FD``) edge-triggered, whenever the socket has
    commands to process, not when a message is readable or room to send appears; and any call on
    the socket (a receive, a send, a look at its events) may process those commands, taking the
    edge with it. So a waiter clears its flag, then asks the socket's events, and sleeps only if
    what it needs is not there; and whoever looks at the events wakes the waiters of the other
    direction when their condition holds (a reader may take the edge that announced room for a
    blocked sender, and a sender the one that announced a message). Readers and senders have a flag
    each, so that waking one never makes the other spin.
    """

    def __init__(self, sock: zmq.Socket[bytes]):
        self.sock = sock
        self._ready = {_POLLIN: gevent.event.Event(), _POLLOUT: gevent.event.Event()}
        self._waiting = {_POLLIN: 0, _POLLOUT: 0}
        self._watcher: Any = gevent.get_hub().loop.io(sock.FD, 1)  # 1: readable
        self._watcher.start(self._state_changed)

    def _state_changed(self) -> None:
        for flag in self._ready.values():
            flag.set()

    def _events(self) -> int:
        """The socket's events, after waking the waiters they satisfy."""
        events = cast(int, self.sock.getsockopt(_EVENTS))
        for event, flag in self._ready.items():
            if events & event and self._waiting[event]:
                flag.set()
        return events

    def _wait_for(self, event: int) -> None:
        flag = self._ready[event]
        self._waiting[event] += 1
        try:
            while True:
                flag.clear()
                if self._events() & event:
                    return
                flag.wait()
        finally:
            self._waiting[event] -= 1

    def recv_multipart(self) -> list[bytes]:
        """The next message's frames (bytes); blocks the calling greenlet only. Raises
        ``zmq.ZMQError`` once the socket is closed."""
        self._wait_for(_POLLIN)
        frames = self.sock.recv_multipart(_NOBLOCK)
        if self._waiting[_POLLOUT]:
            self._events()  # the receive may have taken the edge a blocked sender waits for
        return frames

    def send_multipart(self, parts: list[Any], copy: bool = True) -> None:
        """Send one message (``jupyter_client.Session.send`` calls this); waits, without blocking
        the hub, while the socket's send queue is full (a kernel that stopped reading)."""
        while True:
            try:
                self.sock.send_multipart(parts, _NOBLOCK, copy=copy)
                break
            except zmq.Again:
                self._wait_for(_POLLOUT)
        if self._waiting[_POLLIN]:
            self._events()  # the send may have taken the edge that announced a message

    def close(self) -> None:
        """Stop watching and close the socket at once (unsent messages are dropped)."""
        self._watcher.stop()
        self._watcher.close()
        self.sock.close(linger=0)
        self._state_changed()  # waiters find the socket closed


class KernelChannels:
    """The sockets and reader greenlets of one launched kernel process."""

    CHANNELS = ("shell", "control", "iopub", "stdin")

    def __init__(
        self,
        info: Mapping[str, Any],
        session: Session,
        route: Callable[[str, Message], None],
        on_drop: Callable[[], None] | None = None,
    ):
        self.on_drop = on_drop  # told of every message dropped as unreadable (a bad signature, a replay)
        context = _context()
        self.sockets: dict[str, ChannelSocket] = {}
        for channel in self.CHANNELS:
            kind = zmq.SUB if channel == "iopub" else zmq.DEALER
            sock = context.socket(kind)
            sock.linger = 0
            if channel == "iopub":
                sock.setsockopt(zmq.SUBSCRIBE, b"")
                # A kernel can publish faster than the gateway reads (a flood, many kernels at once):
                # what it has published and we have not read waits in the kernel's own send queue
                # (ipykernel's high-water mark: 1000 messages) rather than in this process.
                sock.setsockopt(zmq.RCVHWM, IOPUB_QUEUE)
            else:
                sock.setsockopt(zmq.IDENTITY, session.bsession)
            sock.connect(f"ipc://{info['ip']}-{info[channel + '_port']}")
            self.sockets[channel] = ChannelSocket(sock)
        self.session = session
        self.readers = [gevent.spawn(self._read, channel, route) for channel in self.CHANNELS]

    def _read(self, channel: str, route: Callable[[str, Message], None]) -> None:
        sock = self.sockets[channel]
        session = self.session
        while True:
            try:
                frames = sock.recv_multipart()
            except zmq.ZMQError:
                return  # socket closed
            try:
                _, payload = session.feed_identities(frames, copy=True)
                # The frames are bytes (copied out of libzmq). Megabytes must not stall the hub.
                msg = deserialize_cooperatively(session, cast(list[bytes], payload))
            except Exception:  # a malformed or unsigned message: drop it, keep reading
                log.warning("dropping an unreadable message on %s", channel, exc_info=True)
                if self.on_drop is not None:
                    self.on_drop()
                continue
            route(channel, msg)
            if len(payload) > 4 and len(payload[4]) >= YIELD_AFTER:
                # With messages queued, recv never blocks, so this loop would hand a flood on without
                # letting anyone else run: a stream's writer could not drain its buffer in between.
                gevent.sleep(0)

    def send(self, channel: str, msg: dict[str, Any], buffers: list[Any] | None = None) -> None:
        """Sign ``msg`` (a message built with ``session.msg`` or by a client: header, parent_header,
        metadata, content) with the kernel's key and send it, with ``buffers``, on ``channel``."""
        # Session.send only calls send_multipart on what it is given, which ChannelSocket provides.
        self.session.send(cast(Any, self.sockets[channel]), msg, buffers=buffers)

    def close(self) -> None:
        """Stop the readers and close the sockets."""
        current = gevent.getcurrent()
        gevent.killall([g for g in self.readers if g is not current], block=False)
        for sock in self.sockets.values():
            sock.close()
