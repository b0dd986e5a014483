"""Kernel processes: launching one in its own process group, signalling and reaping it, its output.

The only module of the runtime that touches process ids. A kernel is ours (a ``Popen`` we launched,
as session leader, so its pgid is its pid) or another worker's (an ``AttachedProcess``, a pid).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import gevent
from jupyter_client.connect import write_connection_file
from jupyter_client.launcher import launch_kernel

from fngw.master.reaper import PARENT_FILE, PGID_FILE
from fngw.master.runtime import pid_alive

from .specs import ResolvedSpec

CHANNEL_PORTS = ("shell", "iopub", "stdin", "control", "hb")


def launch(
    spec: ResolvedSpec,
    folder: Path,
    key: bytes,
    env: Mapping[str, str],
    cwd: str | None,
    outlives_parent: bool = False,
) -> tuple[subprocess.Popen, dict[str, Any]]:
    """Start ``spec``'s kernel with IPC sockets in ``folder`` (file paths cannot be taken by another
    process between choosing and binding, as TCP ports can), its output in ``folder/stderr.log`` and
    its pgid in ``folder/PGID_FILE`` (so a gunicorn master can kill the group if the worker dies
    without cleaning up). Unless ``outlives_parent``, the kernel is told its parent's pid
    (``JPY_PARENT_PID``), and ipykernel exits once that process is gone. Returns the process and
    the connection info."""
    connection_file = str(folder / "connection.json")
    # IPC endpoints are named <ip>-<port>: the "ports" only tell the channels' sockets apart.
    shell, iopub, stdin, control, hb = range(1, len(CHANNEL_PORTS) + 1)
    _, info = write_connection_file(
        connection_file,
        ip=str(folder / "ipc"),
        key=key,
        transport="ipc",
        kernel_name=spec.name,
        shell_port=shell,
        iopub_port=iopub,
        stdin_port=stdin,
        control_port=control,
        hb_port=hb,
    )
    (folder / PARENT_FILE).write_text(str(os.getpid()))  # before the process exists: see reap_unkept
    with open(folder / "stderr.log", "wb") as err:
        proc = launch_kernel(
            spec.command(connection_file),
            stdin=subprocess.DEVNULL,
            stdout=err.fileno(),
            stderr=err.fileno(),
            env={**{k: v for k, v in env.items() if k != "JPY_PARENT_PID"}, "KERNEL_GATEWAY": "1"},
            cwd=cwd,
            independent=outlives_parent,
        )
    (folder / PGID_FILE).write_text(str(proc.pid))
    return proc, dict(info)


def wait_exited(proc: Any, timeout: float) -> bool:
    """True once ``proc`` has exited, polling with ``gevent.sleep`` (``Popen.wait`` would block
    the hub); False after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while proc.poll() is None:
        if time.monotonic() >= deadline:
            return False
        gevent.sleep(0.02)
    return True


def signal_group(pid: int, signum: int) -> None:
    """Send ``signum`` to the process group led by ``pid``, if it still exists."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signum)


def output_tail(folder: Path, limit: int = 2000) -> str:
    """The last ``limit`` bytes the kernel wrote to its stdout and stderr, as text."""
    try:
        return (folder / "stderr.log").read_bytes()[-limit:].decode("utf-8", "replace").strip()
    except OSError:
        return ""


class AttachedProcess:
    """A kernel process started by another process of this instance: the same ``pid``/``poll``
    surface as ``Popen``, read from /proc (it is not our child, so we never reap it)."""

    def __init__(self, pid: int):
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        """None while the process runs; -1 once it is gone or a zombie."""
        if self.returncode is None and not pid_alive(self.pid):
            self.returncode = -1
        return self.returncode
