"""Killing what a dead process left behind. Standard library only: a gunicorn master imports this,
and the master must not import jupyter_client (its Popen breaks once a forked worker is patched)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
from pathlib import Path

PGID_FILE = "pgid"  # in each kernel's private directory: the kernel's process group id
PARENT_FILE = "parent"  # beside it: the pid of the process that launched the kernel
KEPT_FILE = "kept"  # beside it when the kernel is to outlive that process (see reap_unkept)


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


def reap_unkept(kernels_dir: str | Path, parent_pid: int) -> list[int]:
    """Kill the kernels under ``kernels_dir`` that process ``parent_pid`` (now dead) launched and
    never marked as kept (``KEPT_FILE``): kernels it was still starting or held in reserve, which
    nobody else knows of. Kept ones are left for the instance's other processes to take over.
    Returns the process groups signalled."""
    killed = []
    for folder in Path(kernels_dir).glob("k-*"):
        try:
            if (folder / KEPT_FILE).exists() or int((folder / PARENT_FILE).read_text()) != parent_pid:
                continue
            pgid = int((folder / PGID_FILE).read_text())
        except (ValueError, OSError):
            continue  # not ours, or a launch that never got as far as a process
        with contextlib.suppress(OSError):
            os.killpg(pgid, signal.SIGKILL)
            killed.append(pgid)
        shutil.rmtree(folder, ignore_errors=True)
    return killed
