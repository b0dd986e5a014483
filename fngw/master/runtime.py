"""The instance folder: everything one gateway instance (one gunicorn master) keeps on disk.

``$TMPDIR/fngw-<master pid>/`` holds one folder per worker (its kernels' connection files, so the
master can reap what a dead worker left), the readiness files of a reload, the Prometheus
multiprocess files and the kernel API's shared records. Paths are short: IPC socket paths must
stay under about 100 characters. The master removes the whole folder when it exits. Standard
library only: the gunicorn master imports this.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class InstancePaths:
    """The folders of the instance whose master has ``master_pid``."""

    master_pid: int

    @property
    def root(self) -> Path:
        """``$TMPDIR/fngw-<master pid>``: removed by the master's ``on_exit``."""
        return Path(tempfile.gettempdir()) / f"fngw-{self.master_pid}"

    def worker(self, worker_pid: int) -> Path:
        """Where worker ``worker_pid`` keeps its kernels' connection files and process-group ids."""
        return self.root / f"worker-{worker_pid}"

    @property
    def ready(self) -> Path:
        """Where each worker leaves a file named by its pid once all its kernel pools are up."""
        return self.root / "ready"

    @property
    def metrics(self) -> Path:
        """prometheus_client's multiprocess folder (``PROMETHEUS_MULTIPROC_DIR``)."""
        return self.root / "metrics"

    @property
    def kernel_api(self) -> Path:
        """The kernel API's records of kernels and sessions, shared by the workers."""
        return self.root / "kernel-api"

    @property
    def kernel_api_kernels(self) -> Path:
        """The kernel API's kernels' folders (connection files, process-group ids): the instance's,
        not a worker's, because these kernels outlive the worker that started them."""
        return self.root / "kernel-api-kernels"

    @property
    def handover(self) -> Path:
        """A file per worker that a reload replaces: as it exits, it leaves its kernel API kernels
        running for the new workers instead of stopping them."""
        return self.root / "handover"

    @property
    def failed(self) -> Path:
        """A file per worker of a reload that could not load the deployment (it changed again, and
        broke, after the reload was checked): the reload is abandoned, the old workers serve on."""
        return self.root / "failed"

    @property
    def validated(self) -> Path:
        """Left by the watcher (``fngw.server.watch``) with its SIGHUP: it checked the deployment
        just now, so the master's ``on_reload`` does not check again."""
        return self.root / "validated"

    @property
    def serve_spec(self) -> Path:
        """`fngw serve FOLDER --reload`: how to write its manifest again (``fngw.starter``)."""
        return self.root / "serve.json"

    @property
    def reloading(self) -> Path:
        """Present while a reload is under way (the watcher then waits before signalling again)."""
        return self.root / "reloading"

    def replacing(self) -> bool:
        """Whether a reload is under way: workers marked to hand over are still running."""
        try:
            return any(e.name.isdigit() and pid_alive(int(e.name)) for e in self.handover.iterdir())
        except OSError:
            return False


def worker_runtime_dir(master_pid: int, worker_pid: int) -> Path:
    """``InstancePaths(master_pid).worker(worker_pid)``."""
    return InstancePaths(master_pid).worker(worker_pid)


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` runs: it exists and is not a zombie (read from /proc, so it works
    for processes that are not our children and for any user's)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in "ZX"
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
