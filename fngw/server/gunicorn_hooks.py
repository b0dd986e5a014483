"""gunicorn hooks; ``gunicorn.conf.py`` at the repository root wires them in.

The master imports this module: it must stay free of jupyter_client (see ``fngw.kernels.reaper``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

from fngw.kernels.reaper import reap_runtime_dir
from fngw.server.runtime import worker_runtime_dir
from fngw.server.startup import EXIT_APP_LOAD_ERROR, manifest_path
from fngw.telemetry import multiprocess


def on_starting(server) -> None:
    """In the master, before any worker forks: refuse to start on a manifest that does not validate,
    printing `fngw validate --strict` output once instead of once per worker. It runs as a child
    process because checking kernelspecs imports jupyter_client, which the master must not."""
    path = manifest_path()
    check = subprocess.run(
        [sys.executable, "-m", "fngw", "validate", "--strict", "--format", "text", str(path)],
        capture_output=True,
        text=True,
    )
    if check.returncode != 0:
        if check.returncode == 2 and not check.stdout:  # unreadable: the worker says it best
            source = "$FNGW_MANIFEST" if os.environ.get("FNGW_MANIFEST") else "default"
            print(f"fngw: cannot read the manifest {path} ({source}): {check.stderr.strip()}", file=sys.stderr)
        else:
            print(check.stdout.rstrip(), file=sys.stderr, flush=True)
        raise SystemExit(EXIT_APP_LOAD_ERROR)
    # One metrics folder for the instance: workers write there, any of them renders the sum.
    multiprocess.prepare(worker_runtime_dir(os.getpid(), 0).parent / "metrics")


def worker_exit(server, worker) -> None:
    """In the worker, as it exits: shut its kernels down."""
    entry = sys.modules.get("fngw.wsgi")
    for owner in (getattr(entry, "pools", None), getattr(entry, "kernel_registry", None)):
        if owner is not None:
            owner.shutdown()


def child_exit(server, worker) -> None:
    """In the master, after a worker exited (even by SIGKILL): kill the process groups of any kernels
    it left running and remove their connection files."""
    multiprocess.forget_worker(worker.pid)
    killed = reap_runtime_dir(worker_runtime_dir(os.getpid(), worker.pid))
    if killed:
        server.log.warning(
            "worker %s left %d kernel(s) running; killed process groups %s", worker.pid, len(killed), killed
        )


def on_exit(server) -> None:
    shutil.rmtree(worker_runtime_dir(os.getpid(), 0).parent, ignore_errors=True)
