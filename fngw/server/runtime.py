"""Where a worker keeps its kernels' connection files, so its master can clean up after it."""

from __future__ import annotations

import tempfile
from pathlib import Path


def worker_runtime_dir(master_pid: int, worker_pid: int) -> Path:
    """``$TMPDIR/fngw-<master>/worker-<pid>``: short, because IPC socket paths must stay under ~100
    characters, and known to the master, whose ``child_exit`` hook reaps what a dead worker left."""
    return Path(tempfile.gettempdir()) / f"fngw-{master_pid}" / f"worker-{worker_pid}"
