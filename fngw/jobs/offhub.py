"""Calling a blocking store from gevent code: each call runs in the hub's thread pool.

SQLite waits on its file lock (up to its busy timeout) inside C code that gevent cannot switch
out of; in a worker's hub that would stall every request of the worker. In the thread pool, only
the calling greenlet waits.
"""

from __future__ import annotations

from typing import Any, cast

import gevent

from .model import JobStore


class _OffHub:
    def __init__(self, store: JobStore):
        self._store = store

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._store, name)
        if name == "describe" or not callable(method):
            return method

        def off_hub(*args: Any, **kwargs: Any) -> Any:
            def call() -> tuple[bool, Any]:
                # Errors come back as values: the thread pool would print every one it sees with a
                # traceback, and most are answers (a full queue, a finished job), not faults.
                try:
                    return True, method(*args, **kwargs)
                except Exception as exc:
                    return False, exc

            ok, value = gevent.get_hub().threadpool.apply(call)
            if not ok:
                raise value
            return value

        return off_hub


def off_hub(store: JobStore) -> JobStore:
    """``store`` with every call run in gevent's thread pool (same methods, same errors)."""
    return cast(JobStore, _OffHub(store))
