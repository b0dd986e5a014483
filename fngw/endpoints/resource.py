"""Falcon resources serving annotated cells.

One ``EndpointResource`` per URL path; each annotated method of that path is an ``EndpointHandler``
installed as the resource's ``on_<method>`` responder, so methods that are not annotated get 405
with ``Allow`` from Falcon itself, before any kernel is taken.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable

import falcon

from fngw.http.body import read_body
from fngw.http.disconnect import ClientGone, abandon_if_client_leaves
from fngw.http.errors import GatewayError
from fngw.kernels import (
    ExecutionTimeout,
    KernelLost,
    KernelPool,
    OutputLimitExceeded,
    PoolClosed,
    PoolUnavailable,
    QueueFull,
    QueueTimeout,
)
from fngw.manifest import Access
from fngw.routing import Route

from . import execution, response
from .request import request_document

log = logging.getLogger("fngw.endpoints")


class EndpointHandler:
    """Runs one annotated endpoint: parse the request, lease a kernel, execute, render."""

    def __init__(
        self,
        route: Route,
        pool: KernelPool,
        language: str,
        max_body: int,
        stats: dict[str, int],
        observe_pool_wait: Callable[[str, float], None] | None = None,
        max_response: int | None = None,
    ):
        self.route = route
        self.observe_pool_wait = observe_pool_wait
        self.pool = pool
        self.settings = route.settings
        self.plan = execution.ExecutionPlan.for_endpoint(route.endpoint, language)
        self.max_body = max_body
        self.max_response = max_response
        self.stats = stats

    @property
    def access(self) -> Access:
        return self.settings.auth

    def __call__(self, req: falcon.Request, resp: falcon.Response, **params: str) -> None:
        body = read_body(req, self.max_body)
        request_json = json.dumps(request_document(req, body, params, self.max_body))
        ctx = req.context
        ctx.pool = self.pool.name
        waited = time.perf_counter()
        try:
            with abandon_if_client_leaves(req, self._client_left):
                kernel = self.pool.acquire(self.settings.pool.queue_timeout)
        except (QueueFull, QueueTimeout) as exc:
            raise GatewayError(
                falcon.HTTP_503, "Service Unavailable", str(exc), headers={"Retry-After": "1"}, pool=self.pool.name
            ) from None
        except (PoolUnavailable, PoolClosed) as exc:
            raise GatewayError(
                falcon.HTTP_503, "Service Unavailable", str(exc), headers={"Retry-After": "5"}, pool=self.pool.name
            ) from None
        except ClientGone:
            raise GatewayError(
                "499 Client Closed Request",
                "Client Closed Request",
                "the client closed the connection while the request waited for a kernel",
            ) from None
        finally:
            ctx.pool_wait = time.perf_counter() - waited
            if self.observe_pool_wait is not None:
                self.observe_pool_wait(self.pool.name, ctx.pool_wait)
        ctx.kernel_id = kernel.id
        started = time.perf_counter()
        try:
            outcome = execution.run(
                self.plan, self.pool, kernel, request_json, self.settings.timeout, self.max_response
            )
        except OutputLimitExceeded as exc:
            raise GatewayError(
                falcon.HTTP_502,
                "Bad Gateway",
                f"the cell's output passed server.max_response ({exc.limit} bytes); its kernel is being interrupted",
            ) from None
        except ExecutionTimeout:
            raise GatewayError(
                falcon.HTTP_504,
                "Gateway Timeout",
                f"the cell did not finish within {self.settings.timeout:g}s; its kernel is being interrupted",
            ) from None
        except KernelLost as exc:
            raise GatewayError(
                falcon.HTTP_502,
                "Bad Gateway",
                f"the kernel stopped while running the request ({exc}); it is being replaced",
            ) from None
        finally:
            ctx.kernel_seconds = time.perf_counter() - started
            self.pool.release(kernel)
        response.render(req, resp, outcome, tracebacks=self.settings.tracebacks)

    def _client_left(self) -> None:
        self.stats["disconnects"] = self.stats.get("disconnects", 0) + 1


class EndpointResource:
    """Every annotated method of one URL path."""

    def __init__(self, handlers: dict[str, EndpointHandler]):
        self.handlers = handlers
        for method, handler in handlers.items():
            setattr(self, f"on_{method.lower()}", handler)
        if "GET" in handlers and "HEAD" not in handlers:
            self.on_head = handlers["GET"]  # Falcon sends no body for HEAD

    def access_for(self, method: str) -> Access | None:
        handler = self.handlers.get("GET" if method == "HEAD" else method)
        return handler.access if handler else None
