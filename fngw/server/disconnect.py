"""Noticing a client that hangs up while its request waits (for a kernel, or for a kernel start)."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import falcon
import gevent
import gevent.socket


class ClientGone(Exception):
    """The client closed its connection while its request waited for a kernel."""


@contextmanager
def abandon_if_client_leaves(req: falcon.Request, on_leave: Callable[[], None] | None = None) -> Iterator[None]:
    """While the body of the ``with`` runs, a client that closes its connection interrupts it with
    ``ClientGone``: a request still queued for a kernel must not keep its place for nobody."""
    sock = req.env.get("gunicorn.socket")
    if sock is None:
        yield
        return
    waiting = gevent.getcurrent()

    def watch() -> None:
        try:
            gevent.socket.wait_read(sock.fileno())
            data = sock.recv(1, socket.MSG_PEEK)
        except OSError:
            data = b""
        if data == b"":  # EOF; data would be a pipelined next request, which is fine
            if on_leave is not None:
                on_leave()
            gevent.kill(waiting, ClientGone)

    watcher = gevent.spawn(watch)
    try:
        yield
    finally:
        watcher.kill(block=False)
