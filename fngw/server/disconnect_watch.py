"""The server's side of ``fngw.http.disconnect``: watching a connection's socket for a hang-up.

fngw's gunicorn worker puts ``functools.partial(watch_disconnect, sock)`` under
``environ[WATCH_DISCONNECT]``; resources use it through ``abandon_if_client_leaves``.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager

import gevent
import gevent.socket

from fngw.http.disconnect import ClientGone


@contextmanager
def watch_disconnect(sock: socket.socket) -> Iterator[None]:
    """While the body of the ``with`` runs, end of stream on ``sock`` (the client closed it) raises
    ``ClientGone`` in the waiting greenlet. A pipelined next request is data,
    not a hang-up, and is left alone."""
    waiting = gevent.getcurrent()

    def watch() -> None:
        try:
            gevent.socket.wait_read(sock.fileno())
            data = sock.recv(1, socket.MSG_PEEK)
        except OSError:
            data = b""
        if data == b"":  # EOF; data would be a pipelined next request, which is fine
            gevent.kill(waiting, ClientGone)

    watcher = gevent.spawn(watch)
    try:
        yield
    finally:
        watcher.kill(block=False)
