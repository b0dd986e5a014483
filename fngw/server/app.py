"""The composition root: one function builds the whole WSGI application from a manifest."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import falcon

from fngw.auth import read_token
from fngw.auth.middleware import TokenAuth
from fngw.endpoints.docs_page import DocsAssets, DocsPage, swagger_ui_folder
from fngw.endpoints.documents import (
    DocumentResource,
    add_async_calls,
    add_operations,
    openapi_document,
    swagger_document,
)
from fngw.endpoints.files import SourceResource, StaticResource
from fngw.endpoints.resource import EndpointHandler, EndpointResource
from fngw.http import errors
from fngw.http.body import BodyLimit
from fngw.http.paths import RawPathRouting
from fngw.jobs import JobRunner, JobStore, JobSubmitter, StoreUnavailable
from fngw.jobs.callbacks import CallbackSender
from fngw.jobs.openapi import SCHEMAS as JOB_SCHEMAS
from fngw.jobs.openapi import job_paths
from fngw.jobs.resources import JobAccess, JobListResource, JobResource, JobResultResource
from fngw.jobs.stores import open_store
from fngw.jobs.submission import JOBS_PATH
from fngw.kernel_api import KernelApi, KernelRegistry
from fngw.kernel_api.openapi import SCHEMAS, kernel_api_paths
from fngw.kernels.process import pid_alive
from fngw.manifest import PUBLIC, JobSettings, Manifest, join_url
from fngw.routing import GATEWAY_URL_PREFIX, RoutePlan, plan_routes
from fngw.telemetry.metrics import GatewayMetrics
from fngw.telemetry.requests import RequestTelemetry
from fngw.telemetry.tracing import Tracing

from .application import GatewayApplication
from .cors_middleware import Cors
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
    job_store: JobStore | None = None,
    tracing: Tracing | None = None,
) -> GatewayApplication:
    """The application serving ``manifest``, for the composition root (``build_gateway``) and for
    tests. ``plan`` saves re-reading notebooks when the caller already checked the deployment
    (``ValueError`` listing the problems when the routes cannot be served); ``pools`` and
    ``kernel_registry`` are the worker's kernels, which the returned application's ``start`` and
    ``close`` run and stop. Without pools, notebook endpoints are not served; without a registry,
    nor is the kernel API. ``metrics`` defaults to metrics of this application alone. Unless the
    manifest says ``jobs: false``, endpoints also take asynchronous calls, kept in ``job_store``
    (default: the store the manifest names, ``fngw.jobs.stores.open_store``). The
    application's ``begin_shutdown()`` turns readiness to 503 and closes websockets (fngw's gunicorn
    worker calls it on SIGTERM). ``tracing``: OpenTelemetry spans for every request (None: off;
    ``fngw.telemetry.tracing``), flushed by ``close``."""
    plan = _checked_plan(manifest, plan)
    if metrics is None:
        metrics = GatewayMetrics()
    lifecycle = Lifecycle()
    peers = kernel_registry.peers if kernel_registry is not None else None
    auth = TokenAuth({name: read_token(source) for name, source in manifest.auth.tokens.items()}, peers)
    app = falcon.App(middleware=_middleware(manifest, metrics, auth, tracing))
    errors.install(app)
    install_error_map(app)
    jobs = None
    if manifest.jobs is not None and pools is not None:
        store = job_store if job_store is not None else open_store(manifest.jobs, manifest.path, in_hub=True)
        jobs = _job_routes(app, manifest, manifest.jobs, plan, pools, store, auth, metrics)
    sample = TelemetrySampler(metrics, pools, kernel_registry, jobs.store if jobs else None).sample
    _gateway_routes(app, manifest, plan, pools, kernel_registry is not None, metrics, lifecycle, sample)
    if pools is not None:
        _endpoint_routes(app, manifest, plan, pools, metrics, jobs.submitter if jobs else None)
    _notebook_routes(app, manifest, plan)
    app.add_sink(_not_found)  # unknown paths get the gateway's JSON 404, not falcon's default
    if manifest.kernel_api is not None and kernel_registry is not None:
        api = KernelApi(
            manifest.kernel_api,
            kernel_registry,
            manifest.server.cors,
            manifest.server.base_url,
            manifest.server.max_websocket_queue,
            kernel_registry.handoff_dir,
        )
        for template, resource, *suffix in api.routes():
            app.add_route(template, resource, suffix=suffix[0] if suffix else None)
        registry = kernel_registry

        def begin_shutdown() -> None:
            lifecycle.begin_draining()
            api.close_websockets()
            registry.abandon_starts()

        return GatewayApplication(
            app,
            begin_shutdown,
            pools,
            kernel_registry,
            sample,
            jobs.runner if jobs else None,
            on_start=api.start,
            tracing=tracing,
            longest_run=longest_run(manifest, plan),
        )
    return GatewayApplication(
        app,
        lifecycle.begin_draining,
        pools,
        kernel_registry,
        sample,
        jobs.runner if jobs else None,
        tracing=tracing,
        longest_run=longest_run(manifest, plan),
    )


def longest_run(manifest: Manifest, plan: RoutePlan) -> float:
    """Seconds the longest request may take (its queue wait and its timeout) or, unless jobs are
    off, the longest job (its endpoint's async timeout, else jobs.timeout)."""
    longest = 0.0
    for route in plan.routes:
        settings = route.settings
        longest = max(longest, settings.pool.queue_timeout + settings.timeout)
        if manifest.jobs is not None:
            longest = max(longest, settings.asynchronous.timeout or manifest.jobs.timeout)
    return longest


def _checked_plan(manifest: Manifest, plan: RoutePlan | None) -> RoutePlan:
    """``plan``, or the manifest's routes planned now; ``ValueError`` listing the problems when
    they cannot be served (routes that collide, notebooks that do not parse)."""
    if plan is not None:
        return plan
    planned = plan_routes(manifest)
    errors_found = [problem for problem in planned.problems if problem.severity == "error"]
    if errors_found:
        listing = "\n".join(problem.format_text() for problem in errors_found) or "no route plan"
        raise ValueError(f"the manifest's routes cannot be served:\n{listing}")
    return planned.plan


def _middleware(manifest: Manifest, metrics: GatewayMetrics, auth: TokenAuth, tracing: Tracing | None) -> list[Any]:
    """In order: telemetry, CORS, body limit, token auth, raw-path routing (last: it sets the path
    Falcon routes on)."""
    middleware: list[Any] = [RequestTelemetry(metrics, tracing)]
    if manifest.server.cors is not None:
        middleware.append(Cors(manifest.server.cors))
    return [*middleware, BodyLimit(manifest.server.max_body), auth, RawPathRouting()]


@dataclass(frozen=True)
class _Jobs:
    store: JobStore
    submitter: JobSubmitter
    runner: JobRunner


def _job_routes(
    app: falcon.App,
    manifest: Manifest,
    settings: JobSettings,
    plan: RoutePlan,
    pools: GatewayPools,
    store: JobStore,
    auth: TokenAuth,
    metrics: GatewayMetrics,
) -> _Jobs:
    """The jobs' resources under /_fngw/jobs, the submitter endpoints hand asynchronous calls to,
    and this worker's runner."""
    base = manifest.server.base_url
    deliver = None
    if settings.callbacks is not None:
        deliver = CallbackSender(settings.callbacks, read_token(settings.callbacks.secret), base).deliver
    by_endpoint = {f"{route.method} {route.path}": pools[route.pool_id] for route in plan.routes}
    runner = JobRunner(store, app, by_endpoint, settings, pid_alive, metrics.observe_job, deliver)
    submitter = JobSubmitter(store, settings, base, auth.caller, runner.wake, metrics.observe_job)
    access = JobAccess(store, auth.caller, settings.admin, tokens_configured=bool(manifest.auth.tokens))
    jobs_url = join_url(base, JOBS_PATH)
    app.add_route(jobs_url, JobListResource(access, base))
    app.add_route(jobs_url + "/{job_id}", JobResource(access, base, metrics.observe_job))
    app.add_route(jobs_url + "/{job_id}/result", JobResultResource(access))
    return _Jobs(store, submitter, runner)


def _gateway_routes(
    app: falcon.App,
    manifest: Manifest,
    plan: RoutePlan,
    pools: GatewayPools | None,
    kernel_api_served: bool,
    metrics: GatewayMetrics,
    lifecycle: Lifecycle,
    sample: Callable[[], None],
) -> None:
    """The gateway's own routes under /_fngw: health, readiness, metrics, the OpenAPI document."""
    base = manifest.server.base_url
    app.add_route(join_url(base, GATEWAY_URL_PREFIX, "health"), HealthResource())
    app.add_route(join_url(base, GATEWAY_URL_PREFIX, "ready"), ReadyResource(pools, lifecycle))
    if manifest.server.metrics:
        app.add_route(
            join_url(base, GATEWAY_URL_PREFIX, "metrics"),
            MetricsResource(metrics.render, sample, manifest.auth.default),
        )
    document = openapi_document(manifest, plan)
    if manifest.jobs is not None and pools is not None:
        add_async_calls(document, plan)
        add_operations(document, job_paths(base), JOB_SCHEMAS, PUBLIC)
    if manifest.kernel_api is not None and kernel_api_served:
        add_operations(document, kernel_api_paths(base), SCHEMAS, manifest.kernel_api.auth)
    spec_url = join_url(base, GATEWAY_URL_PREFIX, "openapi.json")
    app.add_route(spec_url, DocumentResource(document, manifest.auth.default))
    if manifest.server.docs:
        page = join_url(base, GATEWAY_URL_PREFIX, "docs")
        assets = join_url(page, "assets")
        app.add_route(page, DocsPage(spec_url, assets, manifest.auth.default))
        app.add_route(f"{assets}/{{filepath:path}}", DocsAssets(assets, swagger_ui_folder(), PUBLIC))


def _endpoint_routes(
    app: falcon.App,
    manifest: Manifest,
    plan: RoutePlan,
    pools: GatewayPools,
    metrics: GatewayMetrics,
    jobs: JobSubmitter | None,
) -> None:
    """One resource per URL path, with a handler per annotated method."""
    by_path: dict[str, dict[str, EndpointHandler]] = {}
    for route in plan.routes:
        handler = EndpointHandler(
            route,
            pools[route.pool_id],
            plan.notebooks[route.notebook].language,
            manifest.server.max_body,
            metrics.observe_pool_wait,
            manifest.server.max_response,
            metrics.observe_rejection,
            jobs,
        )
        by_path.setdefault(route.path, {})[route.method] = handler
    for path, handlers in by_path.items():
        app.add_route(falcon_template(path), EndpointResource(handlers))


def _notebook_routes(app: falcon.App, manifest: Manifest, plan: RoutePlan) -> None:
    """Per notebook: its Swagger document, and its source and static files when enabled."""
    for name, nb in manifest.notebooks.items():
        mount = join_url(manifest.server.base_url, nb.mount)
        routes = [r for r in plan.routes if r.notebook == name]
        app.add_route(
            join_url(mount, "_api/spec/swagger.json"), DocumentResource(swagger_document(nb.path, routes), nb.auth)
        )
        if nb.download:
            app.add_route(join_url(mount, "_api/source"), SourceResource(nb.path, nb.auth))
        if nb.static is not None:
            public = join_url(mount, "public")
            app.add_route(f"{public}/{{filepath:path}}", StaticResource(public, nb.static, nb.auth))


class TelemetrySampler:
    """Copies this worker's pool and kernel API figures into the metrics."""

    def __init__(
        self,
        metrics: GatewayMetrics,
        pools: GatewayPools | None,
        registry: KernelRegistry | None,
        jobs: JobStore | None = None,
    ):
        self.metrics = metrics
        self.pools = pools
        self.registry = registry
        self.jobs = jobs

    def sample(self) -> None:
        """Copy the pools', kernel API's and job store's figures into the metrics now."""
        if self.jobs is not None:
            try:
                queued, oldest_age = self.jobs.waiting()
            except StoreUnavailable:
                pass  # the runner says so in the log; the gauges keep their last values
            else:
                self.metrics.sample_jobs(queued, oldest_age)
        if self.pools is not None:
            self.metrics.sample_pools(pool.stats() for pool in self.pools.pools.values())
        if self.registry is not None:
            self.metrics.sample_kernel_api(*self.registry.local_counts())


def _not_found(req: falcon.Request, resp: falcon.Response, **params: str) -> None:
    raise falcon.HTTPNotFound(description=f"no route matches {req.path}")
