"""Killing what a dead process left behind. Standard library only: a gunicorn master imports this,
and the master must not import jupyter_client (its Popen breaks once a forked worker is patched)."""

from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path

PGID_FILE = "pgid"  # in each kernel's private directory: the kernel's process group id


def reap_runtime_dir(runtime_dir: str | Path) -> list[int]:
    """Kill the process group of every kernel recorded under ``runtime_dir`` and remove their files.

    For a parent process (a gunicorn master) cleaning up after a worker that died without shutting
    its kernels down. Returns the process groups signalled."""
    killed = []
    root = Path(runtime_dir)
    for pgid_file in root.glob(f"k-*/{PGID_FILE}"):
        try:
            pgid = int(pgid_file.read_text())
            os.killpg(pgid, signal.SIGKILL)
            killed.append(pgid)
        except (ValueError, OSError):
            pass
    shutil.rmtree(root, ignore_errors=True)
    return killed
