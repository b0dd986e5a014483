"""What a client may ask of a kernel start, checked before anything is reserved or launched.

Each function raises ``Invalid`` (a 400) for what it cannot accept.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

from .errors import Invalid

MAX_ENV_VALUE = 32 * 1024  # characters of one environment value a client may pass
# A kernel id names a file in the instance's shared folder: no separators, no dot files.
KERNEL_ID = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}")


def client_env(env: Any, whitelist: Collection[str]) -> dict[str, str]:
    """The variables of a client's ``env`` that reach its kernel: ``KERNEL_*`` and the manifest's
    ``env_whitelist``, strings of at most ``MAX_ENV_VALUE`` characters without NUL."""
    if env is None:
        return {}
    if not isinstance(env, dict):
        raise Invalid("env must be a JSON object of strings")
    chosen = {}
    for key, value in env.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise Invalid(f"env values must be strings; {key!r} is not")
        if len(value) > MAX_ENV_VALUE or "\0" in value or "\0" in key:
            raise Invalid(f"env value of {key!r} is too long or contains NUL")
        if key.startswith("KERNEL_") or key in whitelist:
            chosen[key] = value
    return chosen


def check_request(kernel_id: str | None, path: str | None) -> None:
    """A client's own ``kernel_id`` must name no file outside the shared folder; a ``path`` holds no
    NUL."""
    if kernel_id is not None and not KERNEL_ID.fullmatch(kernel_id):
        raise Invalid("kernel_id must be 1-128 letters, digits, '-', '_' or '.', not starting with '.'")
    if path is not None and "\0" in path:
        raise Invalid("path must not contain NUL")


def launch_timeout(env: Mapping[str, str], cap: float) -> tuple[float, str]:
    """Seconds a start may take, and why: the client's ``KERNEL_LAUNCH_TIMEOUT`` (as Jupyter Server
    sends it), capped by ``cap`` (``kernel_api.launch_timeout``, seconds)."""
    raw = env.get("KERNEL_LAUNCH_TIMEOUT")
    if raw is None:
        return cap, f"kernel_api.launch_timeout {cap:g}s"
    try:
        asked = float(raw)
    except ValueError:
        asked = -1.0
    if not asked > 0 or asked != asked or asked == float("inf"):
        raise Invalid(f"KERNEL_LAUNCH_TIMEOUT must be a positive number of seconds, not {raw!r}")
    if asked >= cap:
        return cap, f"KERNEL_LAUNCH_TIMEOUT={raw} capped by kernel_api.launch_timeout {cap:g}s"
    return asked, f"KERNEL_LAUNCH_TIMEOUT={raw}"


def directory_for(path: str) -> str | None:
    """As Kernel Gateway: the notebook ``path`` below the gateway's working directory, walked up to
    a folder that exists; never outside the working directory (None then)."""
    root = Path.cwd().resolve()
    candidate = (root / path.lstrip("/")).resolve()
    if not candidate.is_relative_to(root):
        return None
    while not candidate.is_dir() and candidate != root:
        candidate = candidate.parent
    return str(candidate)
