"""The WSGI application one worker serves, and the kernels it owns."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import falcon
import gevent
import gevent.event

from fngw.jobs import JobRunner
from fngw.kernel_api import KernelRegistry
from fngw.telemetry.tracing import Tracing

from .pools import GatewayPools

SAMPLE_INTERVAL = 1.0  # seconds between copies of this worker's pool figures into the shared metrics


class GatewayApplication:
    """The WSGI application of one worker (``falcon``, the Falcon app, serves every request,
    websocket upgrades included) and the kernels behind it."""

    def __init__(
        self,
        falcon_app: falcon.App,
        begin_shutdown: Callable[[], None],
        pools: GatewayPools | None = None,
        registry: KernelRegistry | None = None,
        sample: Callable[[], None] | None = None,
        runner: JobRunner | None = None,
        on_start: Callable[[], None] | None = None,
        tracing: Tracing | None = None,
        longest_run: float = 0.0,
    ):
        self.runner = runner
        # Seconds a request (its queue wait included) or a job may still run: how long a worker a
        # reload replaces waits for what it runs before it stops.
        self.longest_run = longest_run
        self.tracing = tracing  # flushed at close: the spans of the last requests are exported
        self._on_start = on_start  # what else starts with the kernels (the kernel API's handoff socket)
        self.falcon = falcon_app
        self.sample = sample  # copies the kernels' figures into the metrics
        self._begin_shutdown = begin_shutdown
        self.pools = pools
        self.registry = registry
        self.ready = gevent.event.Event()  # set once every pool is up (after start)
        self._loops: list[gevent.Greenlet] = []

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        return self.falcon(environ, start_response)

    def start(self, on_ready: Callable[[], None] | None = None) -> None:
        """Start the kernels in the background, ``sample`` every ``SAMPLE_INTERVAL`` seconds, and
        ``on_ready`` once every pool is up. Returns at once."""
        sample = self.sample
        if self.pools is not None:
            self.pools.start()
        if self.registry is not None:
            self.registry.start_background()
        if self._on_start is not None:
            self._on_start()
        if self.runner is not None:
            self.runner.start()
        if sample is not None:
            self._loops.append(gevent.spawn(_every, SAMPLE_INTERVAL, sample))
        self._loops.append(gevent.spawn(self._when_ready, on_ready))

    def _when_ready(self, on_ready: Callable[[], None] | None) -> None:
        while self.pools is not None and self.pools.readiness_gaps():
            gevent.sleep(0.1)
        self.ready.set()
        if on_ready is not None:
            on_ready()

    def begin_shutdown(self) -> None:
        """SIGTERM: readiness turns to 503, websocket clients are told the gateway is going, and no
        more jobs are taken (running ones go on while the worker drains)."""
        if self.runner is not None:
            self.runner.stop_claiming()
        self._begin_shutdown()

    def finish_jobs(self, seconds: float, alive: Callable[[], None]) -> None:
        """Let running jobs end, for at most ``seconds``, calling ``alive`` every second."""
        if self.runner is not None and seconds > 0:
            self.runner.wait_running(seconds, alive)

    def close(self, grace: float = 0.0, hand_over: bool = False) -> None:
        """Stop the background loops and every kernel of this worker; running jobs get ``grace``
        seconds to finish first. With ``hand_over`` (a reload: the instance goes on) the kernel API's
        kernels keep running for the workers that follow."""
        gevent.killall(self._loops, block=False)
        if self.runner is not None:
            # Before the pools: unfinished jobs are requeued or failed, not run into a closed pool.
            self.runner.close(grace)
        if self.pools is not None:
            self.pools.shutdown()
        if self.registry is not None:
            self.registry.shutdown(hand_over=hand_over)
        if self.tracing is not None:
            self.tracing.shutdown()


def _every(seconds: float, action: Callable[[], None]) -> None:
    while True:
        action()
        gevent.sleep(seconds)
