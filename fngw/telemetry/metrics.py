"""Prometheus metrics of one gateway instance, whatever the number of gunicorn workers.

``GatewayMetrics`` owns every metric fngw exports. Request metrics are recorded as requests end;
pool and kernel API figures are sampled from the pools' own counters (``sample``), so the kernel
runtime knows nothing of Prometheus.

Under gunicorn the master sets ``PROMETHEUS_MULTIPROC_DIR`` before forking (see
``fngw.server.gunicorn_hooks``): every worker then writes its values to files there and any worker
renders the sum of all of them, so a scrape sees the instance, not the worker it landed on. Without
that variable (tests, tools) the values live in this process.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from fngw.master.metrics_dir import MULTIPROC_ENV

DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
OVERHEAD_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)


class GatewayMetrics:
    """Every fngw metric, in a registry of its own (no process-wide state)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.multiprocess_dir = os.environ.get(MULTIPROC_ENV) or None
        r = self.registry

        def gauge(name: str, doc: str, labels: Iterable[str] = ()) -> Gauge:
            # livesum: the instance's value is the sum over workers that are alive.
            return Gauge(name, doc, list(labels), registry=r, multiprocess_mode="livesum")

        self.requests = Counter(
            "fngw_requests", "HTTP requests answered, by route template, method and status.",
            ["route", "method", "status"], registry=r,
        )  # fmt: skip
        self.duration = Histogram(
            "fngw_request_duration_seconds", "Time from request to response, by route and method.",
            ["route", "method"], buckets=DURATION_BUCKETS, registry=r,
        )  # fmt: skip
        self.overhead = Histogram(
            "fngw_gateway_overhead_seconds",
            "Request time minus the time its kernel spent executing, for requests that reached a kernel.",
            ["route", "method"], buckets=OVERHEAD_BUCKETS, registry=r,
        )  # fmt: skip
        self.pool_wait = Histogram(
            "fngw_pool_wait_seconds", "Time a request waited for a kernel of its pool.",
            ["pool"], buckets=DURATION_BUCKETS, registry=r,
        )  # fmt: skip
        self.queue_depth = gauge("fngw_pool_queue_depth", "Requests waiting for a kernel.", ["pool"])
        self.pool_size = gauge("fngw_pool_size", "Kernels a pool is configured to keep.", ["pool"])
        self.pool_kernels = gauge("fngw_pool_kernels", "Kernels of a pool by state.", ["pool", "state"])
        self.rejections = Counter(
            "fngw_pool_rejections", "Requests answered 503 because the pool's queue was full or the wait ran out.",
            ["pool", "reason"], registry=r,
        )  # fmt: skip
        self.request_rejections = Counter(
            "fngw_request_rejections",
            "Requests refused before any kernel was used: by their schemas (422) or media type (415).",
            ["route", "method", "reason"], registry=r,
        )  # fmt: skip
        self.stream_first_byte = Histogram(
            "fngw_stream_first_byte_seconds", "Time from request to a streamed response's first byte.",
            ["route", "method", "mode"], buckets=DURATION_BUCKETS, registry=r,
        )  # fmt: skip
        self.stream_disconnects = Counter(
            "fngw_stream_disconnects",
            "Streamed responses whose client left before the end (the cell was interrupted).",
            ["route", "method", "mode"], registry=r,
        )  # fmt: skip
        self.executions = Counter(
            "fngw_pool_executions", "Cells a pool's kernels ran for requests.", ["pool"], registry=r
        )
        self.timeouts = Counter(
            "fngw_pool_timeouts", "Executions that ran past their timeout (answered 504).", ["pool"], registry=r
        )
        self.kernel_starts = Counter(
            "fngw_kernel_starts", "Kernel starts and restarts that worked.", ["pool"], registry=r
        )
        self.kernel_restarts = Counter("fngw_kernel_restarts", "Kernel restarts, for any reason.", ["pool"], registry=r)
        self.kernel_deaths = Counter(
            "fngw_kernel_deaths", "Kernels that died without being asked to.", ["pool"], registry=r
        )
        self.dropped_messages = Counter(
            "fngw_kernel_messages_dropped", "Kernel messages refused as unreadable: a bad or replayed signature.",
            ["pool"], registry=r,
        )  # fmt: skip
        self.api_kernels = gauge("fngw_kernel_api_kernels", "Kernels the kernel API runs.")
        self.api_websockets = gauge("fngw_kernel_api_websockets", "Open kernel API websocket connections.")
        self.jobs = Counter(
            "fngw_jobs", "Asynchronous calls reaching a status (queued, running, succeeded, ...), by endpoint.",
            ["endpoint", "status"], registry=r,
        )  # fmt: skip
        # The store's figures are the same whichever worker reads them: the instance shows the largest.
        self.jobs_queued = Gauge(
            "fngw_jobs_queued", "Jobs waiting in the store (all instances sharing it).",
            registry=r, multiprocess_mode="livemax",
        )  # fmt: skip
        self.jobs_oldest = Gauge(
            "fngw_jobs_oldest_queued_age_seconds", "Age of the oldest job waiting in the store.",
            registry=r, multiprocess_mode="livemax",
        )  # fmt: skip
        self._seen: dict[tuple[str, str], float] = {}  # last sampled value of each pool counter

    # --- recorded per request -------------------------------------------------------------------

    def observe_request(
        self, route: str, method: str, status: int, seconds: float, kernel_seconds: float | None
    ) -> None:
        """Count one request (route template, method, status) and its duration and gateway overhead (seconds)."""
        self.requests.labels(route, method, str(status)).inc()
        self.duration.labels(route, method).observe(seconds)
        if kernel_seconds is not None:
            self.overhead.labels(route, method).observe(max(0.0, seconds - kernel_seconds))

    def observe_stream(self, route: str, method: str, mode: str, first_byte: float | None, client_left: bool) -> None:
        """A streamed response that has ended: seconds to its first byte, and whether its client left."""
        if first_byte is not None:
            self.stream_first_byte.labels(route, method, mode).observe(first_byte)
        if client_left:
            self.stream_disconnects.labels(route, method, mode).inc()

    def observe_rejection(self, route: str, method: str, reason: str) -> None:
        """Count a request refused by its contract: reason ``schema`` (422) or ``media_type`` (415)."""
        self.request_rejections.labels(route, method, reason).inc()

    def observe_pool_wait(self, pool: str, seconds: float) -> None:
        """Observe how long (seconds) a request waited for a kernel of pool."""
        self.pool_wait.labels(pool).observe(seconds)

    # --- sampled --------------------------------------------------------------------------------

    def sample_pools(self, stats: Iterable[Any]) -> None:
        """Copy ``PoolStats`` into the metrics: gauges as they are, counters by their increase."""
        for s in stats:
            self.queue_depth.labels(s.name).set(s.queued)
            self.pool_size.labels(s.name).set(s.size)
            for state in ("idle", "busy", "starting"):
                self.pool_kernels.labels(s.name, state).set(getattr(s, state))
            self._advance(self.rejections.labels(s.name, "queue_full"), s.name, "rejected", s.rejected)
            self._advance(self.rejections.labels(s.name, "queue_timeout"), s.name, "queue_timeouts", s.queue_timeouts)
            self._advance(self.executions.labels(s.name), s.name, "executions", s.executions)
            self._advance(self.timeouts.labels(s.name), s.name, "timeouts", s.timeouts)
            self._advance(self.kernel_starts.labels(s.name), s.name, "starts", s.starts)
            self._advance(self.kernel_restarts.labels(s.name), s.name, "restarts", s.restarts)
            self._advance(self.kernel_deaths.labels(s.name), s.name, "deaths", s.deaths)
            self._advance(self.dropped_messages.labels(s.name), s.name, "dropped", s.dropped_messages)

    def sample_kernel_api(self, kernels: int, websockets: int) -> None:
        """Set the kernel API gauges: kernels this worker owns and its websocket connections."""
        self.api_kernels.set(kernels)
        self.api_websockets.set(websockets)

    def observe_job(self, endpoint: str, status: str) -> None:
        """Count a job of ``endpoint`` ("POST /score") reaching ``status`` in this process."""
        self.jobs.labels(endpoint, status).inc()

    def sample_jobs(self, queued: int, oldest_age: float) -> None:
        """Set the store's queue length and the age (seconds) of its oldest queued job."""
        self.jobs_queued.set(queued)
        self.jobs_oldest.set(oldest_age)

    def _advance(self, counter: Any, pool: str, field: str, value: float) -> None:
        last = self._seen.get((pool, field), 0.0)
        if value > last:
            counter.inc(value - last)
        self._seen[(pool, field)] = value

    # --- exposition -----------------------------------------------------------------------------

    def render(self) -> tuple[bytes, str]:
        """(body, content type) in the Prometheus text format."""
        if self.multiprocess_dir is None:
            return generate_latest(self.registry), CONTENT_TYPE_LATEST
        from prometheus_client import multiprocess

        combined = CollectorRegistry()
        multiprocess.MultiProcessCollector(combined, path=self.multiprocess_dir)
        return generate_latest(combined), CONTENT_TYPE_LATEST
