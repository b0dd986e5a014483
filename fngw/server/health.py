"""Liveness, readiness and metrics: what platforms and operators poll."""

from __future__ import annotations

from collections.abc import Callable

import falcon

from fngw.auth import Guarded
from fngw.manifest import Access

from .pools import GatewayPools


class Lifecycle:
    """Whether this worker is serving or draining (SIGTERM received: finish, take nothing new)."""

    def __init__(self) -> None:
        self.draining = False

    def begin_draining(self) -> None:
        """SIGTERM: readiness answers 503 from now on."""
        self.draining = True


class HealthResource:
    """Liveness: answers without touching any kernel or lock."""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        """GET /_fngw/health: 200 {status: ok} while the worker answers at all (liveness)."""
        resp.media = {"status": "ok"}
        resp.cache_control = ["no-store"]


class ReadyResource:
    """Readiness: 200 once every pool has all its kernels started, else 503 saying what is missing;
    503 too while the worker drains, so a load balancer stops sending it traffic."""

    def __init__(self, pools: GatewayPools | None, lifecycle: Lifecycle):
        self.pools = pools
        self.lifecycle = lifecycle

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        """GET /_fngw/ready: 200 once every pool is up, 503 with what is missing (or draining) otherwise."""
        resp.cache_control = ["no-store"]
        if self.lifecycle.draining:
            resp.status = falcon.HTTP_503
            resp.media = {"status": "draining", "missing": ["the gateway is shutting down"]}
            return
        missing = self.pools.readiness_gaps() if self.pools is not None else []
        if missing:
            resp.status = falcon.HTTP_503
            # "failing": a pool has no kernel up and its starts fail (a seed cell that raises); it
            # keeps trying, but waiting will not help until the notebook or its environment changes
            failing = self.pools is not None and self.pools.start_failures()
            resp.media = {"status": "failing" if failing else "starting", "missing": missing}
        else:
            resp.media = {"status": "ready"}


class MetricsResource(Guarded):
    """Prometheus text exposition of the whole instance; ``sample`` refreshes this worker's pool
    figures first, so a scrape never reads them older than the worker's own sampling interval."""

    def __init__(self, render: Callable[[], tuple[bytes, str]], sample: Callable[[], None], access: Access):
        self.render = render
        self.sample = sample
        self.access = access

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        """GET /_fngw/metrics: the instance's Prometheus metrics, summed across workers."""
        self.sample()
        body, content_type = self.render()
        resp.data = body
        resp.content_type = content_type
        resp.cache_control = ["no-store"]
