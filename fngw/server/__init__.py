"""Server wiring: the Falcon application and, separately, the gunicorn hooks.

``create_app`` is imported on first use: the gunicorn master imports ``gunicorn_hooks`` from this
package and must not import the kernel runtime (see ``fngw.kernels.reaper``).
"""

from __future__ import annotations

from typing import Any

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from .app import create_app

        return create_app
    raise AttributeError(f"module 'fngw.server' has no attribute {name!r}")
