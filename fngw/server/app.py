"""The composition root: one function builds the whole WSGI application from a manifest."""

from __future__ import annotations

import falcon

from fngw.manifest import Manifest, join_url
from fngw.routing import GATEWAY_PREFIX, RoutePlan, plan_routes

from . import errors
from .health import HealthResource, ReadyResource
from .limits import BodyLimit
from .pools import GatewayPools


def create_app(manifest: Manifest, plan: RoutePlan | None = None, pools: GatewayPools | None = None) -> falcon.App:
    """Build the gateway for ``manifest``. ``plan`` saves re-reading notebooks when the caller
    already checked the deployment; ``pools`` are the worker's kernel pools (the caller starts and
    stops them: they belong to the process, not to the application object)."""
    if plan is None:
        planned = plan_routes(manifest)
        if planned.plan is None:
            raise ValueError("the manifest's routes cannot be planned; run `fngw validate` for details")
        plan = planned.plan
    app = falcon.App(middleware=[BodyLimit(manifest.server.max_body)])
    errors.install(app)
    base = manifest.server.base_url
    app.add_route(join_url(base, GATEWAY_PREFIX, "health"), HealthResource())
    app.add_route(join_url(base, GATEWAY_PREFIX, "ready"), ReadyResource(pools))
    app.add_sink(_not_found)  # unknown paths get the gateway's JSON 404, not falcon's default
    return app


def _not_found(req: falcon.Request, resp: falcon.Response, **params: str) -> None:
    raise falcon.HTTPNotFound(title="Not Found", description=f"no route matches {req.path}")
