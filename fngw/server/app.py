"""The composition root: one function builds the whole WSGI application from a manifest."""

from __future__ import annotations

import falcon

from fngw.auth import read_token
from fngw.auth.middleware import TokenAuth
from fngw.kernel_api import KernelApi, KernelRegistry
from fngw.manifest import Manifest, join_url
from fngw.routing import GATEWAY_PREFIX, RoutePlan, plan_routes

from . import errors
from .cors import Cors
from .health import HealthResource, ReadyResource
from .limits import BodyLimit
from .pools import GatewayPools
from .websocket import with_websockets


def falcon_template(path: str) -> str:
    """``/scotches/:name`` -> ``/scotches/{name}``."""
    return "/".join("{" + seg[1:] + "}" if seg.startswith(":") else seg for seg in path.split("/"))


def create_app(
    manifest: Manifest,
    plan: RoutePlan | None = None,
    pools: GatewayPools | None = None,
    kernel_registry: KernelRegistry | None = None,
):
    """Build the gateway for ``manifest``. ``plan`` saves re-reading notebooks when the caller
    already checked the deployment; ``pools`` and ``kernel_registry`` are the worker's kernels (the
    caller starts and stops them: they belong to the process, not to the application object).
    Without pools, notebook endpoints are not served; without a registry, nor is the kernel API.
    Returns the Falcon app, wrapped for websocket upgrades when the kernel API is on."""
    from fngw.endpoints.documents import DocumentResource, openapi_document, swagger_document
    from fngw.endpoints.files import SourceResource, StaticResource
    from fngw.endpoints.resource import EndpointHandler, EndpointResource

    if plan is None:
        planned = plan_routes(manifest)
        if planned.plan is None:
            raise ValueError("the manifest's routes cannot be planned; run `fngw validate` for details")
        plan = planned.plan
    secrets = {name: read_token(source) for name, source in manifest.auth.tokens.items()}
    middleware: list = []
    if manifest.server.cors is not None:
        middleware.append(Cors(manifest.server.cors))
    middleware += [BodyLimit(manifest.server.max_body), TokenAuth(secrets)]
    app = falcon.App(middleware=middleware)
    errors.install(app)
    base = manifest.server.base_url

    app.add_route(join_url(base, GATEWAY_PREFIX, "health"), HealthResource())
    app.add_route(join_url(base, GATEWAY_PREFIX, "ready"), ReadyResource(pools))
    app.add_route(
        join_url(base, GATEWAY_PREFIX, "openapi.json"),
        DocumentResource(openapi_document(manifest, plan), manifest.auth.default),
    )

    stats: dict[str, int] = {}
    if pools is not None:
        by_path: dict[str, dict[str, EndpointHandler]] = {}
        for route in plan.routes:
            language = plan.notebooks[route.notebook].language
            handler = EndpointHandler(route, pools[route.pool_id], language, manifest.server.max_body, stats)
            by_path.setdefault(route.path, {})[route.method] = handler
        for path, handlers in by_path.items():
            app.add_route(falcon_template(path), EndpointResource(handlers))

    for name, nb in manifest.notebooks.items():
        mount = join_url(base, nb.mount)
        routes = [r for r in plan.routes if r.notebook == name]
        app.add_route(
            join_url(mount, "_api/spec/swagger.json"), DocumentResource(swagger_document(nb.path, routes), nb.auth)
        )
        if nb.download:
            app.add_route(join_url(mount, "_api/source"), SourceResource(nb.path, nb.auth))
        if nb.static is not None:
            app.add_route(join_url(mount, "public/{filepath:path}"), StaticResource(nb.static, nb.auth))
    app.add_sink(_not_found)  # unknown paths get the gateway's JSON 404, not falcon's default
    if manifest.kernel_api is not None and kernel_registry is not None:
        api = KernelApi(manifest.kernel_api, kernel_registry, manifest.server.cors, base)
        for template, resource in api.routes():
            app.add_route(template, resource)
        auth = next(m for m in middleware if isinstance(m, TokenAuth))
        return with_websockets(app, api, lambda req: auth.authorize(req, manifest.kernel_api.auth))
    return app


def _not_found(req: falcon.Request, resp: falcon.Response, **params: str) -> None:
    raise falcon.HTTPNotFound(title="Not Found", description=f"no route matches {req.path}")
