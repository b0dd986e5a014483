"""Opening the store a manifest names (``jobs.store``), or the default one."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from pathlib import Path

from fngw.manifest import JobSettings
from fngw.manifest.environment import expand_url

from .model import JobStore
from .offhub import off_hub
from .sqlite_store import SqliteJobStore


def state_dir(environ: Mapping[str, str] = os.environ) -> Path:
    """Where fngw keeps what outlives an instance: ``$FNGW_STATE_DIR``, else
    ``$XDG_STATE_HOME/fngw``, else ``~/.local/state/fngw``."""
    if environ.get("FNGW_STATE_DIR"):
        return Path(environ["FNGW_STATE_DIR"])
    base = environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "fngw"


def default_store_path(manifest_path: Path, environ: Mapping[str, str] = os.environ) -> Path:
    """The default SQLite file of the manifest at ``manifest_path``: one per manifest, in the state
    folder, so that a restarted gateway finds the jobs it accepted (the instance folder does not
    outlive its master)."""
    digest = hashlib.sha256(str(manifest_path.resolve()).encode()).hexdigest()[:12]
    return state_dir(environ) / f"jobs-{manifest_path.stem}-{digest}.db"


def open_store(
    settings: JobSettings, manifest_path: Path, environ: Mapping[str, str] = os.environ, *, in_hub: bool = False
) -> JobStore:
    """The store ``settings`` name (``${NAME}`` in a Redis URL from ``environ``: ``UnsetVariable``
    when one is not set). A Redis store connects lazily: opening never fails for an
    unreachable server (calls raise ``StoreUnavailable`` until it is back). ``in_hub``: the caller
    is a gevent worker, so SQLite's blocking calls go to the thread pool (``off_hub``); Redis's
    sockets are gevent's own and stay in the hub (a socket must not move between threads)."""
    location = settings.store
    if location is None or location.kind == "sqlite":
        path = default_store_path(manifest_path, environ) if location is None else location.path
        assert path is not None
        store = SqliteJobStore(path)
        return off_hub(store) if in_hub else store
    from .redis_store import RedisJobStore  # redis-py is imported only by deployments that use it

    assert location.url is not None
    return RedisJobStore(expand_url(location.url, environ), ttl=settings.ttl)
