"""Liveness and readiness."""

from __future__ import annotations

import falcon

from .pools import GatewayPools


class HealthResource:
    """Liveness: answers without touching any kernel."""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = {"status": "ok"}
        resp.cache_control = ["no-store"]


class ReadyResource:
    """Readiness: 200 once every pool has all its kernels started, else 503 saying what is missing."""

    def __init__(self, pools: GatewayPools | None):
        self.pools = pools

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.cache_control = ["no-store"]
        missing = self.pools.not_ready() if self.pools is not None else []
        if missing:
            resp.status = falcon.HTTP_503
            resp.media = {"status": "starting", "missing": missing}
        else:
            resp.media = {"status": "ready"}
