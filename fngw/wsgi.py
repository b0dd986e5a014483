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
    secrets = tuple(t.env for t in manifest.auth.tokens.values() if t.env)
    options = PoolOptions(runtime_dir=worker_runtime_dir(os.getppid(), os.getpid()), secrets=secrets)
    pools = GatewayPools(deployment.plan, options)
    app = create_app(manifest, deployment.plan, pools)
    pools.start()
    return app, pools


application, pools = _build()
