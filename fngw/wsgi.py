"""``gunicorn fngw.wsgi``: the WSGI entry point, built in each worker after gevent has patched it.

Importing this module loads and checks the deployment and builds the worker's gateway
(``fngw.server.gateway.build_gateway``), whose kernels start in the background. It is the one place
that knows this process is a gunicorn worker of a master (its parent).
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, cast

from fngw.server.startup import AbandonedReload, StartupError, exit_with, load_deployment

if TYPE_CHECKING:
    from fngw.server.application import GatewayApplication

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


def _build() -> GatewayApplication:
    _require_gevent()
    from fngw.master.runtime import InstancePaths
    from fngw.server.gateway import build_gateway

    instance = InstancePaths(os.getppid())
    try:
        deployment = load_deployment()
    except StartupError as exc:
        if not instance.replacing():
            exit_with(exc)
        # A reload's worker: the files changed again, and broke, after the reload was checked.
        # Exiting with gunicorn's load error would stop the whole gateway; this worker stays idle
        # instead, and the master keeps the old workers serving (gunicorn_hooks).
        # One line: the watcher, or the master's own check, has printed the located problems.
        message = "fngw: a new worker cannot load the files (changed after this reload was checked); reload abandoned"
        print(message, file=sys.stderr, flush=True)
        return cast("GatewayApplication", AbandonedReload(str(exc)))
    return build_gateway(deployment, instance, os.getpid())


application = _build()
