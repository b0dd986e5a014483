"""The gunicorn master's part in metrics: one folder where every worker writes its values.

Imported by the master before any worker forks; it imports prometheus_client only after
``PROMETHEUS_MULTIPROC_DIR`` is set, so that workers inherit file-backed metric values.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def prepare(path: Path) -> None:
    """An empty folder for the workers' metric files, named in the environment they inherit."""
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.environ[MULTIPROC_ENV] = str(path)


def forget_worker(pid: int) -> None:
    """After a worker exited: its live gauges (pool sizes, queue depths) no longer count."""
    path = os.environ.get(MULTIPROC_ENV)
    if path:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid, path)
