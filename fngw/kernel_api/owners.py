"""Which worker of this instance runs each kernel, noted in the instance's own folder.

The registry's records say it too, but they live in Redis when instances share kernels: while Redis
is unreachable, a worker receiving a websocket for one of this instance's kernels still finds the
worker to hand it to here (``fngw.kernel_api.handoff``). Each note is a symlink
``owners/<kernel id> -> <pid>``: written and replaced atomically, read without opening a file.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


def _note(folder: Path, kernel_id: str) -> Path | None:
    if "/" in kernel_id or kernel_id.startswith("."):
        return None
    return folder / "owners" / kernel_id


def note_owner(folder: Path, kernel_id: str, pid: int) -> None:
    """Note that worker ``pid`` runs ``kernel_id`` (replacing an earlier note)."""
    path = _note(folder, kernel_id)
    if path is None:
        return
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    temporary = path.with_name(f".{kernel_id}.{os.getpid()}")
    with contextlib.suppress(FileNotFoundError):
        temporary.unlink()
    os.symlink(str(pid), temporary)
    os.replace(temporary, path)


def noted_owner(folder: Path, kernel_id: str) -> int | None:
    """The worker noted for ``kernel_id``, or None."""
    path = _note(folder, kernel_id)
    try:
        return int(os.readlink(path)) if path is not None else None
    except (OSError, ValueError):
        return None


def forget_owner(folder: Path, kernel_id: str) -> None:
    """Drop the note of ``kernel_id`` (deleted)."""
    path = _note(folder, kernel_id)
    if path is not None:
        with contextlib.suppress(OSError):
            path.unlink()
