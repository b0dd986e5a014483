"""The composition root: one function builds the whole WSGI application from a manifest."""

from __future__ import annotations

import falcon

from fngw.auth import read_token
from fngw.auth.middleware import TokenAuth
from fngw.http import errors
from fngw.http.body import BodyLimit
from fngw.http.paths import RawPathRouting
from fngw.kernel_api import KernelApi, KernelRegistry
from fngw.manifest import Manifest, join_url
from fngw.routing import GATEWAY_URL_PREFIX, RoutePlan, plan_routes
from fngw.telemetry.metrics import GatewayMetrics
from fngw.telemetry.requests import RequestTelemetry

from .application import GatewayApplication
from .cors import Cors
from .error_map import install_error_map
from .health import HealthResource, Lifecycle, MetricsResource, ReadyResource
from .pools import GatewayPools


def falcon_template(path: str) -> str:
    """``/scotches/:name`` -> ``/scotches/{name}``."""
    return "/".join("{" + seg[1:] + "}" if seg.startswith(":") else seg for seg in path.split("/"))


def create_app(
    manifest: Manifest,
    plan: RoutePlan | None = None,
    pools: GatewayPools | None = None,
    kernel_registry: KernelRegistry | None = None,
    metrics: GatewayMetrics | None = None,
):
    """Build the gateway for ``manifest``. ``plan`` saves re-reading notebooks when the caller
    already checked the deployment; ``pools`` and ``kernel_registry`` are the worker's kernels (the
    caller starts and stops them: they belong to the process, not to the application object).
    Without pools, notebook endpoints are not served; without a registry, nor is the kernel API.
    ``metrics`` defaults to metrics of this application alone.
    Returns the WSGI application (the Falcon app, wrapped for websocket upgrades when the kernel API
    is on); its ``begin_shutdown()`` turns readiness to 503 and closes websockets (fngw's gunicorn
    worker calls it on SIGTERM)."""
    from fngw.endpoints.documents import DocumentResource, add_operations, openapi_document, swagger_document
    from fngw.endpoints.files import SourceResource, StaticResource
    from fngw.endpoints.resource import EndpointHandler, EndpointResource

    if plan is None:
        planned = plan_routes(manifest)
        errors_found = [problem for problem in planned.problems if problem.severity == "error"]
        if planned.plan is None or errors_found:
            listing = "\n".join(problem.format_text() for problem in errors_found) or "no route plan"
            raise ValueError(f"the manifest's routes cannot be served:\n{listing}")
        plan = planned.plan
    secrets = {name: read_token(source) for name, source in manifest.auth.tokens.items()}
    if metrics is None:
        metrics = GatewayMetrics()
    lifecycle = Lifecycle()
    middleware: list = [RequestTelemetry(metrics)]
    if manifest.server.cors is not None:
        middleware.append(Cors(manifest.server.cors))
    middleware += [BodyLimit(manifest.server.max_body), TokenAuth(secrets), RawPathRouting()]
    app = falcon.App(middleware=middleware)
    errors.install(app)
    install_error_map(app)
    base = manifest.server.base_url

    app.add_route(join_url(base, GATEWAY_URL_PREFIX, "health"), HealthResource())
    app.add_route(join_url(base, GATEWAY_URL_PREFIX, "ready"), ReadyResource(pools, lifecycle))
    if manifest.server.metrics:
        sampler = TelemetrySampler(metrics, pools, kernel_registry)
        app.add_route(
            join_url(base, GATEWAY_URL_PREFIX, "metrics"),
            MetricsResource(metrics.render, sampler.sample, manifest.auth.default),
        )
    document = openapi_document(manifest, plan)
    if manifest.kernel_api is not None and kernel_registry is not None:
        from fngw.kernel_api.openapi import SCHEMAS, kernel_api_paths

        add_operations(document, kernel_api_paths(base), SCHEMAS, manifest.kernel_api.auth)
    app.add_route(join_url(base, GATEWAY_URL_PREFIX, "openapi.json"), DocumentResource(document, manifest.auth.default))

    stats: dict[str, int] = {}
    if pools is not None:
        by_path: dict[str, dict[str, EndpointHandler]] = {}
        for route in plan.routes:
            language = plan.notebooks[route.notebook].language
            handler = EndpointHandler(
                route,
                pools[route.pool_id],
                language,
                manifest.server.max_body,
                stats,
                metrics.observe_pool_wait,
                manifest.server.max_response,
            )
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
        api = KernelApi(
            manifest.kernel_api, kernel_registry, manifest.server.cors, base, manifest.server.max_websocket_queue
        )
        for template, resource, *suffix in api.routes():
            app.add_route(template, resource, suffix=suffix[0] if suffix else None)

        def begin_shutdown() -> None:
            lifecycle.begin_draining()
            api.close_websockets()
            kernel_registry.abandon_starts()

        return GatewayApplication(app, app, begin_shutdown, pools, kernel_registry)
    return GatewayApplication(app, app, lifecycle.begin_draining, pools, kernel_registry)


class TelemetrySampler:
    """Copies this worker's pool and kernel API figures into the metrics."""

    def __init__(self, metrics: GatewayMetrics, pools: GatewayPools | None, registry: KernelRegistry | None):
        self.metrics = metrics
        self.pools = pools
        self.registry = registry

    def sample(self) -> None:
        """Copy the pools' and kernel API's figures into the metrics now."""
        if self.pools is not None:
            self.metrics.sample_pools(pool.stats() for pool in self.pools.pools.values())
        if self.registry is not None:
            self.metrics.sample_kernel_api(*self.registry.local_counts())


def _not_found(req: falcon.Request, resp: falcon.Response, **params: str) -> None:
    raise falcon.HTTPNotFound(title="Not Found", description=f"no route matches {req.path}")
