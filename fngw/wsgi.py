"""``gunicorn fngw.wsgi``: the WSGI entry point, built in each worker after gevent has patched it.

Importing this module starts the worker's kernel pools (in the background) and is the one place
that knows this process is a gunicorn worker; the hooks in ``fngw.server.gunicorn_hooks`` stop them.
"""

from __future__ import annotations

import os
import sys

from fngw.server.startup import StartupError, exit_with, load_deployment

HOW_TO_RUN = (
    "fngw: the gateway runs on gevent workers: start it as `gunicorn fngw.wsgi` from the folder that "
    "holds fngw's gunicorn.conf.py, or add `--worker-class gevent`"
)


def _require_gevent() -> None:
    try:
        from gevent import monkey
    except ImportError:  # pragma: no cover - gevent is a dependency
        patched = False
    else:
        patched = monkey.is_module_patched("socket")
    if not patched:
        print(HOW_TO_RUN, file=sys.stderr, flush=True)
        raise SystemExit(4)


def _build():
    _require_gevent()
    from fngw.server import create_app
    from fngw.server.pools import GatewayPools, PoolOptions
    from fngw.server.runtime import worker_runtime_dir

    try:
        deployment = load_deployment()
    except StartupError as exc:
        exit_with(exc)
    manifest = deployment.manifest
    from fngw.telemetry import GatewayMetrics, configure_logging

    configure_logging(os.environ.get("FNGW_LOG_FORMAT") or manifest.server.log_format)
    metrics = GatewayMetrics()
    secrets = tuple(t.env for t in manifest.auth.tokens.values() if t.env)
    options = PoolOptions(runtime_dir=worker_runtime_dir(os.getppid(), os.getpid()), secrets=secrets)
    pools = GatewayPools(deployment.plan, options)
    registry = _kernel_registry(manifest, options) if manifest.kernel_api is not None else None
    app = create_app(manifest, deployment.plan, pools, registry, metrics)
    pools.start()
    if registry is not None:
        registry.start_background()
    _sample_every_second(metrics, pools, registry)
    _say_when_ready(pools)
    return app, pools, registry


def _say_when_ready(pools) -> None:
    """Tell the master (a file named by this worker's pid) once every pool is up: on a reload the
    old workers serve until then. See ``fngw.server.gunicorn_hooks.on_reload``."""
    import gevent

    from fngw.server.gunicorn_hooks import ready_dir

    def wait() -> None:
        while pools.not_ready():
            gevent.sleep(0.1)
        folder = ready_dir(os.getppid())
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        (folder / str(os.getpid())).touch()

    gevent.spawn(wait)


def _sample_every_second(metrics, pools, registry) -> None:
    """Keep this worker's pool figures in the shared metric files fresh: a scrape lands on one
    worker, and the others' gauges must not be stale."""
    import gevent

    from fngw.server.app import TelemetrySampler

    sampler = TelemetrySampler(metrics, pools, registry)

    def loop() -> None:
        while True:
            sampler.sample()
            gevent.sleep(1.0)

    gevent.spawn(loop)


def _kernel_registry(manifest, options):
    from fngw.kernel_api import KernelRegistry
    from fngw.kernels import SeedCell
    from fngw.notebook import read_notebook

    settings = manifest.kernel_api
    seed, seed_kernel = (), None
    if settings.seed is not None:
        nb = read_notebook(settings.seed)
        seed = tuple(SeedCell(i, "".join(c.source)) for i, c in enumerate(nb.cells) if c.cell_type == "code")
        seed_kernel = (nb.metadata.get("kernelspec") or {}).get("name")
    from fngw.kernel_api.shared import SharedKernels

    # Next to the workers' own folders: every worker of this instance (same master) shares it.
    shared = SharedKernels(options.runtime_dir.parent / "kernel-api")
    return KernelRegistry(
        settings,
        runtime_dir=options.runtime_dir,
        secrets=options.secrets,
        seed=seed,
        seed_kernel=seed_kernel,
        shared=shared,
    )


application, pools, kernel_registry = _build()
