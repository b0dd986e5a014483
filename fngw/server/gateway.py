"""The composition root of a worker: one checked deployment in, the running gateway out.

``build_gateway`` makes every collaborator (metrics, kernel pools, the kernel API's registry),
hands them to ``create_app`` for the Falcon application, and returns a ``GatewayApplication`` that
owns them: ``start`` starts the kernels and the background loops, ``begin_shutdown`` is SIGTERM's
first step, ``close`` stops every kernel. ``fngw.wsgi`` only calls it; gunicorn's ``worker_exit``
hook reaches ``close`` through the worker, so nothing lives in module globals.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from fngw.deployment import Deployment
from fngw.kernel_api import KernelRegistry
from fngw.kernel_api.shared import SharedKernels
from fngw.master.runtime import InstancePaths
from fngw.telemetry import GatewayMetrics, configure_logging

from .app import create_app
from .application import GatewayApplication
from .pools import GatewayPools, PoolOptions


def build_gateway(
    deployment: Deployment,
    instance: InstancePaths,
    worker_pid: int,
    environ: Mapping[str, str] = os.environ,
) -> GatewayApplication:
    """The started gateway of worker ``worker_pid`` of ``instance``, serving ``deployment``."""
    manifest = deployment.manifest
    configure_logging(environ.get("FNGW_LOG_FORMAT") or manifest.server.log_format)
    metrics = GatewayMetrics()
    secrets = tuple(t.env for t in manifest.auth.tokens.values() if t.env)
    options = PoolOptions(runtime_dir=instance.worker(worker_pid), secrets=secrets)
    pools = GatewayPools(deployment.plan, options)
    registry = None
    if manifest.kernel_api is not None:
        registry = KernelRegistry(
            manifest.kernel_api,
            runtime_dir=options.runtime_dir,
            secrets=secrets,
            seed=deployment.kernel_api_seed.cells,
            seed_kernel=deployment.kernel_api_seed.kernel,
            shared=SharedKernels(instance.kernel_api),  # every worker of the instance shares it
        )
    app = create_app(manifest, deployment.plan, pools, registry, metrics)

    def say_ready() -> None:
        # The master keeps the old workers of a reload serving until every new one is ready.
        instance.ready.mkdir(mode=0o700, parents=True, exist_ok=True)
        (instance.ready / str(worker_pid)).touch()

    app.start(on_ready=say_ready)
    return app
