"""Liveness: answers without touching any kernel."""

from __future__ import annotations

import falcon


class HealthResource:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = {"status": "ok"}
        resp.cache_control = ["no-store"]
