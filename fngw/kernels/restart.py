"""How a supervisor brings a failed kernel back, shared by endpoint pools and the kernel API
(as jupyter_client's restarter does for one kernel, without its polling)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import gevent


@dataclass(frozen=True)
class RestartPolicy:
    """``backoff``: seconds to wait after the 1st, 2nd, ... failed attempt (the last repeats);
    ``limit``: attempts before giving up, None for never (a pool's slot keeps trying, since its
    endpoint is useless without it)."""

    backoff: tuple[float, ...] = (1.0, 2.0, 5.0, 10.0, 30.0)
    limit: int | None = None

    def delay(self, failures: int) -> float:
        """Seconds to wait after ``failures`` (1 or more) failed attempts in a row."""
        return self.backoff[min(failures, len(self.backoff)) - 1]

    def attempts(self, stopped: Callable[[], bool], done: int = 0) -> Iterator[int]:
        """Attempt numbers ``done``, ``done + 1``, ... for a loop whose body returns on success: each
        failed attempt is followed by its backoff (a gevent sleep) before the next. Ends at ``limit``
        or once ``stopped()`` is true."""
        attempt = done
        while not stopped() and (self.limit is None or attempt < self.limit):
            if attempt > done:
                gevent.sleep(self.delay(attempt - done))
                if stopped():
                    return
            yield attempt
            attempt += 1


POOL_SLOT = RestartPolicy()
"""A pool's kernel: retried forever, 1 s to 30 s apart."""

KERNEL_API_KERNEL = RestartPolicy(backoff=(2.0, 4.0, 8.0, 10.0), limit=5)
"""A kernel API kernel that died: five restarts over its life, then it is declared dead (as
jupyter_client's restarter gives up after ``restart_limit`` tries)."""
