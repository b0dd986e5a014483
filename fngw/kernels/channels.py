"""The sockets of one kernel process and the greenlets that read them.

Four ``zmq.green`` sockets (shell, control and stdin as DEALERs, iopub as a SUB), one reader
greenlet each. Every message read is decoded cooperatively (megabytes must not stall the hub) and
handed to ``route(channel, msg)``; a malformed or unsigned message is dropped and logged.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any, cast

import gevent
import zmq
import zmq.green as zmq_green
from jupyter_client.session import Session

from .protocol import Message
from .wire import deserialize_cooperatively

log = logging.getLogger("fngw.kernels")


YIELD_AFTER = 16 * 1024  # bytes of content after which the reader lets other greenlets run
IOPUB_QUEUE = 2  # messages (each at most 256 KiB of stream text) a kernel's iopub may queue here


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
        context: Any = zmq_green.Context.instance()
        self.sockets: dict[str, zmq_green.Socket] = {}
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
            self.sockets[channel] = sock
        self.session = session
        self.readers = [gevent.spawn(self._read, channel, route) for channel in self.CHANNELS]

    def _read(self, channel: str, route: Callable[[str, Message], None]) -> None:
        sock = self.sockets[channel]
        session = self.session
        while True:
            try:
                frames: list[Any] = sock.recv_multipart(copy=True)
            except zmq.ZMQError:
                return  # socket closed
            try:
                _, payload = session.feed_identities(frames, copy=True)
                # copy=True above: the frames are bytes. Megabytes must not stall the hub.
                msg = deserialize_cooperatively(session, cast(list[bytes], payload))  # megabytes must not stall the hub
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

    def send(self, channel: str, msg_type: str, content: dict[str, Any]) -> str:
        """Send a new message of msg_type on channel, signed with the kernel's key; returns its msg_id."""
        msg = self.session.msg(msg_type, content)
        self.session.send(self.sockets[channel], msg)
        return msg["header"]["msg_id"]

    def close(self) -> None:
        """Stop the readers and close the sockets."""
        current = gevent.getcurrent()
        gevent.killall([g for g in self.readers if g is not current], block=False)
        for sock in self.sockets.values():
            sock.close(linger=0)
