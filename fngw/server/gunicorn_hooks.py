"""gunicorn hooks; ``gunicorn.conf.py`` at the repository root wires them in."""

from __future__ import annotations

from fngw.server.startup import StartupError, exit_with, load_deployment


def on_starting(server) -> None:
    """In the master, before any worker forks: refuse to start on a manifest that does not validate,
    printing the same lines as `fngw validate` once instead of once per worker."""
    try:
        load_deployment()
    except StartupError as exc:
        exit_with(exc)
