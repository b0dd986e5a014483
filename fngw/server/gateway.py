"""The composition root of a worker: one checked deployment in, the running gateway out.

``build_gateway`` makes every collaborator (metrics, kernel pools, the kernel API's registry),
hands them to ``create_app`` for the Falcon application, and returns a ``GatewayApplication`` that
owns them: ``start`` starts the kernels and the background loops, ``begin_shutdown`` is SIGTERM's
first step, ``close`` stops every kernel. ``fngw.wsgi`` only calls it; gunicorn's ``worker_exit``
hook reaches ``close`` through the worker, so nothing lives in module globals.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping

from fngw.deployment import Deployment
from fngw.kernel_api import KernelRegistry
from fngw.kernel_api.peers import Peers
from fngw.kernel_api.relay import HttpPeers
from fngw.kernel_api.shared import KernelRecords, SharedKernels
from fngw.kernels import pid_alive
from fngw.manifest import KernelApiSettings
from fngw.manifest.environment import expand_url
from fngw.master.runtime import InstancePaths
from fngw.telemetry import GatewayMetrics, configure_logging
from fngw.telemetry.tracing import start_tracing, tracing_config

from .app import create_app
from .application import GatewayApplication
from .pools import GatewayPools, PoolOptions

log = logging.getLogger("fngw.kernel_api")


def instance_address(environ: Mapping[str, str]) -> str:
    """Where the deployment's other instances reach this one (``http://host:port``):
    ``$FNGW_INSTANCE_ADDRESS``, else Cloud Foundry's ``$CF_INSTANCE_INTERNAL_IP`` and ``$PORT``;
    empty when neither is set (the others then cannot relay to this instance)."""
    if environ.get("FNGW_INSTANCE_ADDRESS"):
        return environ["FNGW_INSTANCE_ADDRESS"].rstrip("/")
    if environ.get("CF_INSTANCE_INTERNAL_IP") and environ.get("PORT"):
        return f"http://{environ['CF_INSTANCE_INTERNAL_IP']}:{environ['PORT']}"
    return ""


def kernel_records(
    settings: KernelApiSettings, instance: InstancePaths, base_url: str, environ: Mapping[str, str]
) -> tuple[KernelRecords, Peers | None]:
    """The kernel API's shared records and the way to the other instances: the instance's folder
    (its workers share it; no other instances), or the Redis registry the manifest names."""
    if settings.registry is None:
        return SharedKernels(instance.kernel_api), None
    from fngw.kernel_api.redis_records import RedisSharedKernels  # redis-py only for deployments that use it

    address = instance_address(environ)
    shared = RedisSharedKernels(
        expand_url(settings.registry, environ),  # load_deployment has checked every name is set
        pid_alive=pid_alive,
        instance=f"{socket.gethostname()}-{instance.master_pid}",  # every worker of this master
        address=address,
    )
    if not address:
        log.warning(
            "kernel API: kernel_api.registry is shared, but FNGW_INSTANCE_ADDRESS is not set: other"
            " instances cannot relay to this one's kernels (they answer 503)"
        )
    return shared, HttpPeers(shared.peer_token, base_url, timeout=settings.launch_timeout + 30)


def build_gateway(
    deployment: Deployment,
    instance: InstancePaths,
    worker_pid: int,
    environ: Mapping[str, str] = os.environ,
) -> GatewayApplication:
    """The started gateway of worker ``worker_pid`` of ``instance``, serving ``deployment``."""
    manifest = deployment.manifest
    configure_logging((environ.get("FNGW_LOG_FORMAT") or manifest.server.log_format).strip().lower())
    metrics = GatewayMetrics()
    secrets = tuple(t.env for t in manifest.auth.tokens.values() if t.env)
    options = PoolOptions(runtime_dir=instance.worker(worker_pid), secrets=secrets)
    pools = GatewayPools(deployment.plan, options)
    registry = None
    if manifest.kernel_api is not None:
        shared, peers = kernel_records(manifest.kernel_api, instance, manifest.server.base_url, environ)
        registry = KernelRegistry(
            manifest.kernel_api,
            runtime_dir=instance.kernel_api_kernels,  # they outlive this worker
            secrets=secrets,
            seed=deployment.kernel_api_seed.cells,
            seed_kernel=deployment.kernel_api_seed.kernel,
            shared=shared,
            peers=peers,
            handoff_dir=instance.root / "handoff",  # each kernel's websockets go to one worker
        )
    config = tracing_config(manifest.server.tracing, environ)
    tracing = start_tracing(config) if config is not None else None  # imports OpenTelemetry only when on
    app = create_app(manifest, deployment.plan, pools, registry, metrics, tracing=tracing)

    def say_ready() -> None:
        # The master keeps the old workers of a reload serving until every new one is ready.
        instance.ready.mkdir(mode=0o700, parents=True, exist_ok=True)
        (instance.ready / str(worker_pid)).touch()

    app.start(on_ready=say_ready)
    return app
