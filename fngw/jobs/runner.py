"""Each worker's job runner: takes queued jobs when their pool has a free kernel, replays them
through the worker's application, keeps their results, and notices cancels and lost runners.

Order: a job is claimed only while its endpoint's pool has an idle kernel that no synchronous
request waits for (and that no job claimed a moment ago is about to take), so synchronous calls
already waiting always go first; among jobs, the oldest runnable one goes first.

A running job is told apart from a lost one by heartbeats: every ``visibility / 3`` seconds (at
most 5) the runner tells the store which jobs it runs and learns which of them were cancelled
(their kernel is then interrupted, as a deadline would). Every runner also recovers jobs whose
runner went silent, and expires old ones (``JobStore.recover``, ``JobStore.expire``).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol

import gevent
import gevent.event

from fngw.manifest import JobSettings

from .model import Job, JobStatus, JobStore, StoredResponse, StoreUnavailable, claimer_id
from .replay import ResultTooLarge, WSGIApp, call, replay_environ

log = logging.getLogger("fngw.jobs")

POLL = 0.5  # seconds between looks for jobs that another worker or instance accepted
CANCEL_GRACE = 5.0  # seconds an interrupted cancelled job gets before its run is abandoned
STOPPED_REASON = "the gateway stopped (SIGTERM, a reload or a restart) while this job ran"


class Interruptible(Protocol):
    """A leased kernel as the runner sees it."""

    def interrupt(self) -> None:
        """Interrupt its running cell."""


class PoolFigures(Protocol):
    """A pool as the runner sees it: its name and its figures now."""

    name: str

    def stats(self) -> Any:
        """An object with ``idle`` and ``queued`` counts."""


@dataclass
class JobRun:
    """One job as its replay runs: the endpoint handler reads ``timeout`` (seconds) and calls
    ``leased`` with the kernel it takes, so that a cancel can interrupt it."""

    job_id: str
    timeout: float
    kernel: Interruptible | None = None
    cancelled: bool = False
    done_with_kernel: bool = False  # the kernel was given back: nothing of the run is left to stop
    deferred: bool = False  # a synchronous request took the kernel first: the job goes back to the queue
    on_lease: Callable[[], None] | None = field(default=None, repr=False)
    on_release: Callable[[], None] | None = field(default=None, repr=False)

    def leased(self, kernel: Interruptible) -> None:
        """The run holds ``kernel`` now (called by the endpoint handler)."""
        self.kernel = kernel
        if self.on_lease is not None:
            self.on_lease()
            self.on_lease = None

    def released(self) -> None:
        """The run gave its kernel back (called by the endpoint handler); a cancel no longer
        interrupts it, and the runner may start another job on it."""
        self.kernel = None
        self.done_with_kernel = True
        if self.on_release is not None:
            self.on_release()


class JobRunner:
    """Runs this worker's share of the jobs in ``store`` through ``app``. ``pools`` maps each
    served endpoint ("POST /score") to its pool; ``observe`` is told each status a job reaches here
    (endpoint, status), for metrics; ``deliver`` is given every finished job and its response
    (callbacks)."""

    def __init__(
        self,
        store: JobStore,
        app: WSGIApp,
        pools: Mapping[str, PoolFigures],
        settings: JobSettings,
        pid_alive: Callable[[int], bool],
        observe: Callable[[str, str], None] | None = None,
        deliver: Callable[[Job, StoredResponse | None], None] | None = None,
    ):
        self.store = store
        self.app = app
        self.pools = pools
        self.settings = settings
        self.pid_alive = pid_alive
        self.observe = observe or (lambda endpoint, status: None)
        self.deliver = deliver
        self.claimer = claimer_id()
        self.running: dict[str, tuple[Job, JobRun, gevent.Greenlet]] = {}
        self._reserved: dict[str, int] = {}  # per pool: claimed jobs that have not leased a kernel yet
        self._wake = gevent.event.Event()
        self._loops: list[gevent.Greenlet] = []
        self._claiming = True
        self._store_down_since: float | None = None

    # --- lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        """Start claiming and heartbeats in the background."""
        self._loops = [gevent.spawn(self._claim_loop), gevent.spawn(self._heartbeat_loop)]

    def wake(self) -> None:
        """A job was just accepted here: look now rather than at the next poll."""
        self._wake.set()

    def stop_claiming(self) -> None:
        """SIGTERM's first step: take no more jobs; running ones go on while the worker drains."""
        self._claiming = False
        self._wake.set()

    def wait_running(self, seconds: float, alive: Callable[[], None] | None = None) -> None:
        """Until the running jobs have ended, at most ``seconds``; ``alive`` is called every second
        meanwhile (a gunicorn worker's heartbeat: its master kills a worker silent for longer than
        its timeout)."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            runs = [greenlet for _, _, greenlet in self.running.values() if not greenlet.dead]
            if not runs:
                return
            gevent.joinall(runs, timeout=min(left, 1.0))
            if alive is not None:
                alive()

    def close(self, grace: float = 0.0) -> None:
        """Stop: take no more jobs, give running ones ``grace`` seconds to finish, then put those
        still running back in the queue (those whose cell never started, and idempotent ones
        once) or fail them, saying why."""
        self._claiming = False
        self._wake.set()
        # A claim in flight completes (in the store's thread, whatever happens to its greenlet):
        # let the loop see it, so that its job is put back below rather than left "running".
        gevent.joinall(self._loops[:1], timeout=5)
        if grace > 0 and self.running:
            log.info("jobs: %d running; waiting up to %.1fs for them to finish", len(self.running), grace)
            self.wait_running(grace)
        gevent.killall(self._loops, block=True, timeout=2)
        for job, run, greenlet in list(self.running.values()):
            greenlet.kill(block=False)
            started_cell = run.kernel is not None or run.done_with_kernel
            try:
                if not started_cell:
                    self.store.requeue(job.id, ran=False)
                elif job.options.idempotent and job.attempts < 2:
                    self.store.requeue(job.id)
                else:
                    self.store.fail(job.id, STOPPED_REASON)
                    self.observe(job.endpoint, "failed")
            except StoreUnavailable:
                log.warning("job %s: the store is unreachable; it is recovered as lost later", job.id)
        self.running.clear()

    # --- claiming --------------------------------------------------------------------------------

    def can_run(self, endpoint: str) -> bool:
        """Whether this worker can start a job of ``endpoint`` now (a free kernel nobody waits for)."""
        pool = self.pools.get(endpoint)
        if pool is None:
            return False
        stats = pool.stats()
        return stats.queued == 0 and stats.idle - self._reserved.get(pool.name, 0) > 0

    def _claim_loop(self) -> None:
        while self._claiming:
            # Decided here, in the hub: the store may ask from its own thread, where the pools'
            # figures must not be read.
            runnable = frozenset(endpoint for endpoint in self.pools if self.can_run(endpoint))
            job = self._guarded(partial(self.store.claim, self.claimer, runnable.__contains__)) if runnable else None
            if job is not None:
                self._begin(job)
                continue
            self._wake.wait(POLL)
            self._wake.clear()

    def _guarded(self, action: Callable[[], Any]) -> Any:
        """``action()``; None while the store is unreachable (said once, and once when it is back)
        or when ``action`` fails unexpectedly (logged with its traceback): the loops never stop."""
        try:
            result = action()
        except StoreUnavailable as exc:
            if self._store_down_since is None:
                self._store_down_since = time.monotonic()
                log.error("jobs: the store %s is unreachable (%s); retrying", self.store.describe(), exc)
            gevent.sleep(1.0)
            return None
        except Exception:
            log.exception("jobs: a store operation failed; retrying")
            gevent.sleep(1.0)
            return None
        if self._store_down_since is not None:
            log.info("jobs: the store %s is reachable again", self.store.describe())
            self._store_down_since = None
        return result

    def _begin(self, job: Job) -> None:
        pool = self.pools[job.endpoint]
        self._reserved[pool.name] = self._reserved.get(pool.name, 0) + 1
        unreserved = False

        def unreserve() -> None:
            nonlocal unreserved
            if not unreserved:
                unreserved = True
                self._reserved[pool.name] -= 1

        run = JobRun(job.id, job.options.timeout, on_lease=unreserve, on_release=self._wake.set)
        self.observe(job.endpoint, "running")
        greenlet = gevent.spawn(self._run, job, run)

        def ended(_: gevent.Greenlet) -> None:
            unreserve()
            self.running.pop(job.id, None)
            self._wake.set()  # its kernel is free: another job may go

        greenlet.link(ended)
        self.running[job.id] = (job, run, greenlet)

    # --- running ---------------------------------------------------------------------------------

    def _run(self, job: Job, run: JobRun) -> None:
        log.info("job %s: running %s (attempt %d)", job.id, job.endpoint, job.attempts)
        try:
            response = call(self.app, replay_environ(job.request, run), self.settings.max_result)
        except ResultTooLarge as exc:
            self._record_failure(job, str(exc))
            return
        except Exception as exc:  # the application answers every error itself; this is a bug of ours
            log.exception("job %s: the run failed", job.id)
            self._record_failure(job, f"the gateway failed while running the job: {type(exc).__name__}")
            return
        if run.deferred:  # a synchronous request took its kernel: back to the queue, not run
            self._retrying(lambda: self.store.requeue(job.id, ran=False))
            return
        status: JobStatus = "failed" if response.status >= 500 else "succeeded"
        error = _message(response) if status == "failed" else None
        self._retrying(lambda: self.store.finish(job.id, response, status, error))
        if not run.cancelled:
            self.observe(job.endpoint, status)
            self._deliver(job, response)

    def _record_failure(self, job: Job, reason: str) -> None:
        self._retrying(lambda: self.store.fail(job.id, reason))
        self.observe(job.endpoint, "failed")
        self._deliver(job, None)

    def _deliver(self, job: Job, response: StoredResponse | None) -> None:
        """Hand the job as the store now has it (finished, with its times) to ``deliver``; a job
        without a callback URL costs no read."""
        if self.deliver is None or job.options.callback is None:
            return
        finished = self._guarded(lambda: self.store.get(job.id))
        if finished is not None and finished.status in ("succeeded", "failed"):
            self.deliver(finished, response)

    def _retrying(self, action: Callable[[], None]) -> None:
        """Record an outcome, waiting out a store outage (up to the visibility timeout, after which
        other runners would take the job for lost anyway)."""
        deadline = time.monotonic() + self.settings.visibility
        while True:
            try:
                action()
                return
            except StoreUnavailable:
                if time.monotonic() > deadline:
                    log.error("jobs: an outcome could not be recorded; the store stayed unreachable")
                    return
                gevent.sleep(1.0)

    # --- heartbeats, cancels, recovery -----------------------------------------------------------

    def _heartbeat_loop(self) -> None:
        interval = max(0.5, min(5.0, self.settings.visibility / 3))
        last_sweep = 0.0
        while True:
            cancelled = self._guarded(lambda: self.store.heartbeat(self.claimer, list(self.running)))
            for job_id in cancelled or ():
                self._cancel(job_id)
            if time.monotonic() - last_sweep >= interval * 3:
                last_sweep = time.monotonic()
                self._guarded(self._sweep)
            gevent.sleep(interval)

    def _sweep(self) -> None:
        for job_id in self.store.recover(self.settings.visibility, self.pid_alive):
            log.warning("job %s: its runner was lost; requeued if idempotent, else failed", job_id)
        self.store.expire(self.settings.ttl)

    def _cancel(self, job_id: str) -> None:
        entry = self.running.get(job_id)
        if entry is None or entry[1].cancelled:
            return
        job, run, greenlet = entry
        run.cancelled = True  # counted as cancelled where the cancel was asked
        log.info("job %s: cancelled while running; interrupting its kernel", job_id)
        if run.done_with_kernel:
            return  # only its response is being stored, which the cancel keeps out
        if run.kernel is None:
            # Not running a cell yet (waiting for its kernel): stop it there; a kernel handed to it
            # meanwhile goes back to the pool (KernelPool.acquire).
            greenlet.kill(block=False)
            return
        run.kernel.interrupt()
        # A cell that ignores the interrupt: abandon the run (its kernel is recovered by the pool).
        gevent.spawn_later(CANCEL_GRACE, lambda: greenlet.kill(block=False) if not greenlet.dead else None)


def _message(response: StoredResponse) -> str:
    """What a failed run said: the gateway's JSON error message, else the status."""
    try:
        message = json.loads(response.body).get("message")
    except (ValueError, AttributeError):
        message = None
    return str(message) if message else f"the call answered {response.status}"
