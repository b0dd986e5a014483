"""A fixed-size pool of warm, seeded kernels shared by many greenlets, that heals itself.

``acquire`` hands out idle kernels least-recently-released first (Kernel Gateway's FIFO rotation);
when none is idle a bounded number of callers wait, each for at most ``queue_timeout``. ``release``
checks the kernel: a healthy idle kernel goes to the next waiter or back to the idle queue; a kernel
still busy (its execution timed out) is interrupted and, if it is not idle within a short grace,
restarted; a dead kernel is restarted. Recovery happens in the background, so the caller that hit
the fault gets its error at once, and no caller is ever handed a kernel that is dead, restarting or
busy. The pool keeps its size through every fault.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import gevent
import gevent.event
import gevent.pool

from .errors import ExecutionTimeout, KernelDied, KernelError, KernelLost, KernelSeedError
from .kernel import Kernel
from .messages import ExecutionResult
from .protocol import Message
from .restart import POOL_SLOT, RestartPolicy

log = logging.getLogger("fngw.kernels")

INTERRUPT_GRACE = 2.0  # seconds a timed-out kernel gets to become idle after an interrupt


class PoolError(KernelError):
    """Base of the errors ``acquire`` raises; ``pool`` names the pool."""

    def __init__(self, message: str, pool: str | None = None):
        super().__init__(message)
        self.pool = pool


class QueueFull(PoolError):
    """Every kernel is busy and ``max_queue`` callers are already waiting."""


class QueueTimeout(PoolError):
    """No kernel became free within ``queue_timeout``."""


class NoIdleKernel(PoolError):
    """``acquire(wait=False)`` found no idle kernel (a caller that must not queue: a job)."""


class PoolUnavailable(PoolError):
    """The pool has no kernel that started; ``cause`` says why (often a failing seed cell)."""

    def __init__(self, message: str, cause: BaseException | None = None, pool: str | None = None):
        super().__init__(message, pool)
        self.cause = cause


class PoolClosed(PoolError):
    """The pool is shutting down."""


@dataclass(frozen=True)
class PoolStats:
    """One pool's figures at one moment, for metrics and readiness: kernels by state and counters since start."""

    name: str
    size: int
    idle: int
    busy: int
    starting: int
    queued: int
    executions: int
    timeouts: int
    starts: int  # kernel starts and restarts that worked
    restarts: int
    deaths: int
    rejected: int
    queue_timeouts: int
    dropped_messages: int = 0  # kernel messages refused as unreadable (bad or replayed signatures)


class KernelPool:
    """``size`` kernels made by ``make_kernel``; see the module docstring for the rules."""

    def __init__(
        self,
        name: str,
        make_kernel: Callable[[], Kernel],
        *,
        size: int = 1,
        max_queue: int = 10,
        interrupt_grace: float = INTERRUPT_GRACE,
        restart_policy: RestartPolicy = POOL_SLOT,
    ):
        self.name = name
        self.size = size
        self.max_queue = max_queue
        self.interrupt_grace = interrupt_grace
        self.restart_policy = restart_policy
        self._make_kernel = make_kernel
        self._kernels: list[Kernel] = []
        self._idle: deque[Kernel] = deque()
        self._waiters: deque[gevent.event.AsyncResult] = deque()
        self._recovering: set[Kernel] = set()
        self._workers = gevent.pool.Group()
        self._closed = False
        self._started = gevent.event.Event()
        self.last_error: BaseException | None = None
        self._executions = self._timeouts = self._restarts = self._starts = 0
        self._first_attempts = 0  # kernels that finished their first start, well or not
        self._rejected = self._queue_timeouts = 0

    # --- lifecycle -------------------------------------------------------------------------------

    def start(self, wait: bool = True) -> None:
        """Start every kernel in parallel. With ``wait``, return once each has started or failed
        once (failed slots keep retrying in the background); raise ``PoolUnavailable`` if none did."""
        for _ in range(self.size):
            kernel = self._make_kernel()
            kernel.on_death(self._kernel_died)
            self._kernels.append(kernel)
            self._workers.spawn(self._bring_up, kernel, first=True)
        if wait:
            self.wait_started()

    def wait_started(self, timeout: float | None = None) -> bool:
        """Until every kernel has started or failed its first start. Raises ``PoolUnavailable`` when
        no kernel is up and one failed."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self._first_attempts < len(self._kernels):
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return False
            self._started.clear()
            self._started.wait(0.5 if remaining is None else min(remaining, 0.5))
        if not self._idle and not self._busy_count() and self.last_error is not None:
            raise PoolUnavailable(
                f"pool {self.name}: no kernel could start: {self.last_error}", self.last_error, self.name
            )
        return True

    def shutdown(self) -> None:
        """Fail waiters, stop recovery, shut every kernel down in parallel."""
        self._closed = True
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.ready():
                waiter.set_exception(PoolClosed(f"pool {self.name} is shutting down"))
        self._workers.kill(block=True, timeout=5)
        group = gevent.pool.Group()
        for kernel in self._kernels:
            group.spawn(kernel.shutdown)
        group.join(timeout=10)
        self._idle.clear()

    # --- leasing -----------------------------------------------------------------------------------

    def acquire(self, queue_timeout: float | None = None, wait: bool = True) -> Kernel:
        """An idle kernel, for the caller's exclusive use until ``release``. Waits at most
        ``queue_timeout`` seconds (None: the pool's own) behind at most ``max_queue`` others;
        without ``wait``, never queues. Raises PoolClosed (shutting down), PoolUnavailable (no
        kernel can start), QueueFull (the queue is full), QueueTimeout (no kernel became free in
        time) or NoIdleKernel (none idle, and not ``wait``)."""
        if self._closed:
            raise PoolClosed(f"pool {self.name} is shutting down", self.name)
        while self._idle:
            kernel = self._idle.popleft()
            if self._usable(kernel):
                return kernel
            self._recover(kernel)
        if not any(k.state in ("new", "starting", "restarting", "idle", "busy") for k in self._kernels):
            cause = self.last_error
            raise PoolUnavailable(
                f"pool {self.name} has no running kernel" + (f": {cause}" if cause else ""), cause, self.name
            )
        if not wait:
            raise NoIdleKernel(f"pool {self.name}: no idle kernel", self.name)
        if len(self._waiters) >= self.max_queue:
            self._rejected += 1
            raise QueueFull(
                f"pool {self.name}: all {self.size} kernels are busy and {self.max_queue} requests wait", self.name
            )
        waiter = gevent.event.AsyncResult()
        self._waiters.append(waiter)
        try:
            # wait() rather than get(timeout=): a caller's own gevent.Timeout must reach the caller,
            # not turn into our QueueTimeout.
            waiter.wait(queue_timeout)
            if waiter.ready():
                return waiter.get()
            self._queue_timeouts += 1
            raise QueueTimeout(f"pool {self.name}: no kernel became free within {queue_timeout:g}s", self.name)
        except BaseException:
            # Our greenlet was killed (the client went away): give back a kernel handed to us meanwhile.
            if waiter.ready() and waiter.successful():
                self.release(waiter.value)
            raise
        finally:
            if waiter in self._waiters:
                self._waiters.remove(waiter)

    def release(self, kernel: Kernel) -> None:
        """Give a kernel back; it is checked and, if needed, recovered before anyone else gets it."""
        if self._closed:
            return
        if self._usable(kernel):
            self._make_available(kernel)
        else:
            self._recover(kernel)

    @contextmanager
    def lease(self, queue_timeout: float | None = None) -> Iterator[Kernel]:
        """A kernel for the body of the with (acquire, then release), waiting at most queue_timeout
        seconds; acquire's errors."""
        kernel = self.acquire(queue_timeout)
        try:
            yield kernel
        finally:
            self.release(kernel)

    def execute(
        self,
        code: str,
        *,
        timeout: float | None,
        queue_timeout: float | None = None,
        kernel: Kernel | None = None,
        max_output: int | None = None,
        on_output: Callable[[Message], None] | None = None,
    ) -> ExecutionResult:
        """Run ``code`` on a kernel of the pool (or on ``kernel``, already leased); ``timeout`` in
        seconds, ``max_output`` in characters, ``on_output`` a listener of output messages (see
        ``Kernel.execute`` for all three)."""
        if kernel is None:
            deadline = None if queue_timeout is None else time.monotonic() + queue_timeout
            while True:
                remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
                with self.lease(remaining) as leased:
                    try:
                        return self.execute(
                            code, timeout=timeout, kernel=leased, max_output=max_output, on_output=on_output
                        )
                    except KernelLost as exc:
                        # The kernel was gone before our code was sent: running it on another kernel
                        # cannot run it twice. Once sent, it may have run: the caller must know.
                        if exc.started:
                            raise
                        log.info("pool %s: kernel %s lost before it began; retrying elsewhere", self.name, leased.id)
        self._executions += 1
        try:
            return kernel.execute(code, timeout, max_output=max_output, on_output=on_output)
        except ExecutionTimeout:
            self._timeouts += 1
            raise

    def stats(self) -> PoolStats:
        """The pool's figures now."""
        states = [k.state for k in self._kernels]
        return PoolStats(
            name=self.name,
            size=self.size,
            idle=len(self._idle),
            busy=self._busy_count(),
            starting=sum(s in ("new", "starting", "restarting") for s in states),
            queued=len(self._waiters),
            executions=self._executions,
            timeouts=self._timeouts,
            starts=self._starts,
            restarts=self._restarts,
            deaths=sum(k.deaths for k in self._kernels),
            rejected=self._rejected,
            queue_timeouts=self._queue_timeouts,
            dropped_messages=sum(k.dropped_messages for k in self._kernels),
        )

    @property
    def kernels(self) -> tuple[Kernel, ...]:
        """Every kernel of the pool, whatever its state."""
        return tuple(self._kernels)

    # --- internals -------------------------------------------------------------------------------

    def _busy_count(self) -> int:
        idle = set(self._idle)
        return sum(
            1 for k in self._kernels if k not in idle and k not in self._recovering and k.state in ("idle", "busy")
        )

    @staticmethod
    def _usable(kernel: Kernel) -> bool:
        return kernel.alive and kernel.state == "idle" and kernel.pending == 0

    def _make_available(self, kernel: Kernel) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.ready():
                waiter.set(kernel)
                return
        self._idle.append(kernel)

    def _kernel_died(self, kernel: Kernel) -> None:
        if kernel in self._idle:
            self._idle.remove(kernel)
            self._recover(kernel)
        # A leased kernel is recovered when its holder releases it (its execute raised KernelDied).

    def _recover(self, kernel: Kernel) -> None:
        if kernel in self._recovering or self._closed:
            return
        self._recovering.add(kernel)
        self._workers.spawn(self._recovery, kernel)

    def _recovery(self, kernel: Kernel) -> None:
        try:
            if kernel.alive and kernel.state == "busy":
                kernel.interrupt()
                if kernel.wait_idle(self.interrupt_grace) and self._usable(kernel):
                    self._make_available(kernel)
                    return
                log.warning("pool %s: kernel %s still busy after interrupt; restarting", self.name, kernel.id)
            self._bring_up(kernel, first=False)
        finally:
            self._recovering.discard(kernel)

    def _bring_up(self, kernel: Kernel, first: bool) -> None:
        """(Re)start ``kernel`` until it works, backing off between failures (``restart_policy``);
        then make it available."""
        for attempt in self.restart_policy.attempts(lambda: self._closed):
            starting = first and attempt == 0
            try:
                if starting:
                    kernel.start()
                else:
                    self._restarts += 1
                    kernel.restart()
                self.last_error = None
                self._starts += 1
                how = "started" if starting else "restarted"
                log.info("pool %s: kernel %s %s (pid %s)", self.name, kernel.id, how, kernel.pid)
                self._make_available(kernel)
                return
            except KernelError as exc:
                self.last_error = exc
                if isinstance(exc, KernelSeedError):
                    log.error("pool %s: %s", self.name, exc)
                else:
                    log.error("pool %s: kernel failed to start: %s", self.name, exc)
                self._fail_waiters_if_hopeless()
            finally:
                if starting:
                    self._first_attempts += 1
                    self._started.set()

    def _fail_waiters_if_hopeless(self) -> None:
        """With no kernel up, waiting cannot succeed soon: tell waiters why at once."""
        if self._idle or self._busy_count():
            return
        error = PoolUnavailable(
            f"pool {self.name} has no running kernel: {self.last_error}", self.last_error, self.name
        )
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.ready():
                waiter.set_exception(error)


__all__ = [
    "KernelDied",
    "KernelPool",
    "PoolClosed",
    "PoolError",
    "PoolStats",
    "PoolUnavailable",
    "QueueFull",
    "QueueTimeout",
]
