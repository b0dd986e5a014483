"""Abandoning work that waits for a client who has hung up.

A request queued for a kernel, or waiting for a kernel to start, must not keep its place (or leave
a kernel running) for nobody. Noticing the hang-up needs the connection's socket, which only the
server has: it puts a watcher under ``environ[WATCH_DISCONNECT]``. Without one (Falcon's test
client, another WSGI server) nothing is watched.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager

import falcon

from .environ import WATCH_DISCONNECT


class ClientGone(Exception):
    """The client closed its connection while its request waited."""


Watcher = Callable[[], AbstractContextManager[None]]


@contextlib.contextmanager
def abandon_if_client_leaves(req: falcon.Request) -> Iterator[None]:
    """While the body of the ``with`` runs, a client that closes its connection interrupts it with
    ``ClientGone``."""
    watch: Watcher | None = req.env.get(WATCH_DISCONNECT)
    if watch is None:
        yield
        return
    with watch():
        yield
