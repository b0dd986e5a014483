"""What the workers of one instance share: one JSON file per kernel, and per session.

A kernel's file holds what another worker needs to reach it (kernelspec name, connection info with
its key, pid) and which worker owns the process. Files are replaced atomically (write, then
rename); counting against ``max_kernels`` and creating sessions happen under an exclusive lock on
the folder. The folders are private to the instance (mode 0700): connection keys are secrets.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Generic, Protocol, TypeVar, cast

import gevent

from fngw.kernels import pid_alive

from .models import KernelRecord, SessionRecord

R = TypeVar("R", KernelRecord, SessionRecord)


class RecordStore(Protocol[R]):
    """JSON records keyed by id, shared by every worker (a folder) or every instance (Redis)."""

    def write(self, record: R, /) -> None:
        """Store ``record``, replacing the one with its id."""

    def update(self, record: R, /) -> bool:
        """Replace the record with ``record``'s id, only if there is one (a record another process
        removed stays removed); whether it was there."""

    def read(self, record_id: str, /) -> R | None:
        """The record ``record_id``, or None."""

    def remove(self, record_id: str, /) -> None:
        """Forget ``record_id`` (no error if it is gone)."""

    def ids(self) -> list[str]:
        """Every record's id."""

    def all(self) -> list[R]:
        """Every readable record."""

    def locked(self) -> AbstractContextManager[None]:
        """Exclusive among everyone who shares the records."""


class KernelRecords(RecordStore[KernelRecord], Protocol):
    """The kernel records, the session records beside them, and who runs which kernel."""

    @property
    def sessions(self) -> RecordStore[SessionRecord]:
        """The session records."""

    def prune(self) -> None:
        """Forget the kernels (and starts) whose process or instance is gone."""

    def instance_of(self, record: KernelRecord, /) -> str | None:
        """The other instance that runs ``record``'s kernel, or None when it is this one."""

    def address_of(self, instance: str, /) -> str | None:
        """Where ``instance`` is reached (``http://host:port``), or None once it is gone."""

    def heartbeat(self, force: bool = False) -> bool:
        """Say this instance is alive (called every few seconds; ``force``: now, not at its own
        pace); True when the records had forgotten it, and its kernels' records must be written again."""


class Records(Generic[R]):
    """A folder of JSON records (each a JSON object with an ``id``) keyed by id, safe to update from
    several processes."""

    def __init__(self, folder: Path):
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)

    def _path(self, kernel_id: str) -> Path:
        return self.folder / f"{kernel_id}.json"

    def write(self, record: R) -> None:
        """Write record (a JSON object with an id) atomically (a temporary file, then rename)."""
        path = self._path(record["id"])
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(record, f)
        os.replace(tmp, path)

    def update(self, record: R) -> bool:
        """Rewrite record only if its file is there (under the folder's lock); whether it was."""
        with self.locked():
            if not self._path(record["id"]).exists():
                return False
            self.write(record)
        return True

    def read(self, kernel_id: str) -> R | None:
        """The record named record_id, or None (absent, unreadable, or an id that names no file here)."""
        if "/" in kernel_id or kernel_id.startswith("."):
            return None
        try:
            record = json.loads(self._path(kernel_id).read_text())
        except (OSError, ValueError):
            return None
        # Written by fngw's workers only (a private folder): trusted to have the shape, once an object.
        return cast(R, record) if isinstance(record, dict) else None

    def remove(self, kernel_id: str) -> None:
        """Forget record_id (no error if it is gone)."""
        with contextlib.suppress(OSError):
            self._path(kernel_id).unlink()

    def ids(self) -> list[str]:
        """The ids of every record."""
        return [p.stem for p in self.folder.glob("*.json")]

    def all(self) -> list[R]:
        """Every readable record."""
        return [r for r in (self.read(i) for i in self.ids()) if r is not None]

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Exclusive across the instance's workers; waits cooperatively (never blocks the hub)."""
        fd = os.open(self.folder / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    gevent.sleep(0.005)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


class SharedKernels(Records[KernelRecord]):
    """The kernel records, and the session records beside them."""

    def __init__(self, folder: Path):
        super().__init__(folder)
        self.sessions: Records[SessionRecord] = Records(folder / "sessions")

    def instance_of(self, record: KernelRecord) -> str | None:
        """The other instance that runs ``record``'s kernel: never, for a folder of this instance."""
        return None

    def heartbeat(self, force: bool = False) -> bool:
        """Nothing to say: the folder is this instance's alone."""
        return False

    def address_of(self, instance: str) -> str | None:
        """Where another instance is reached: there are none."""
        return None

    def prune(self) -> None:
        """Forget kernels whose process is gone, and starts whose worker died (its master has
        killed what that worker left)."""
        for kernel_id in self.ids():
            record = self.read(kernel_id)
            if record is None:
                continue
            pid = record.get("owner") if record.get("pending") else record.get("pid")
            if not isinstance(pid, int) or not pid_alive(pid):
                self.remove(kernel_id)
