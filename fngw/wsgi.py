"""``gunicorn fngw.wsgi``: the WSGI entry point, built in each worker after gevent has patched it."""

from __future__ import annotations

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

    try:
        deployment = load_deployment()
    except StartupError as exc:
        exit_with(exc)
    return create_app(deployment.manifest, deployment.plan)


application = _build()
