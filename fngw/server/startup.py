"""Finding, checking and loading the manifest the gateway serves, exactly as `fngw validate` does."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fngw.package_data import default_manifest_path

if TYPE_CHECKING:
    from fngw.deployment import Deployment

MANIFEST_ENV = "FNGW_MANIFEST"
LOCAL_MANIFEST = "fngw.yaml"
# gunicorn treats this worker exit code as "the application cannot load" and stops the master.
EXIT_APP_LOAD_ERROR = 4


class StartupError(Exception):
    """The gateway cannot start; the message is ready to print as it is."""


def manifest_path(environ: Mapping[str, str] = os.environ) -> Path:
    """``$FNGW_MANIFEST``, else ``./fngw.yaml``, else the shipped ``config/fngw.yaml``."""
    configured = environ.get(MANIFEST_ENV)
    if configured:
        return Path(configured)
    local = Path(LOCAL_MANIFEST)
    if local.is_file():
        return local
    return default_manifest_path()


def load_deployment(environ: Mapping[str, str] = os.environ) -> Deployment:
    """The checked deployment, or ``StartupError`` with the `fngw validate` output. Runs in a worker:
    checking imports jupyter_client, which a gunicorn master must not import."""
    from fngw.deployment import check_deployment
    from fngw.manifest import render

    path = manifest_path(environ)
    try:
        # Secrets must be readable when serving: the strict check, as `fngw validate --strict`.
        # Cells were compiled by the master's check (or the watcher's) before any worker started.
        result = check_deployment(path, strict=True, environ=environ, compile_cells=False)
    except OSError as exc:
        source = f"${MANIFEST_ENV}" if environ.get(MANIFEST_ENV) else "default"
        raise StartupError(f"fngw: cannot read the manifest {path} ({source}): {exc.strerror or exc}") from None
    if result.deployment is None:
        raise StartupError(render([(str(path), result.problems)], "text"))
    for problem in result.problems:  # warnings: the gateway starts, but say so
        print(problem.format_text(), file=sys.stderr)
    return result.deployment


def exit_with(error: StartupError) -> None:
    """Print error and exit with gunicorn's application-load-error code."""
    print(str(error), file=sys.stderr, flush=True)
    raise SystemExit(EXIT_APP_LOAD_ERROR)


class AbandonedReload:
    """The application of a reload's worker that could not load the deployment: it serves nothing
    (fngw's worker never accepts a connection for it) and waits to be stopped."""

    def __init__(self, reason: str):
        self.reason = reason

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        start_response("503 Service Unavailable", [("Content-Type", "text/plain")])
        return [b"reload abandoned\n"]
