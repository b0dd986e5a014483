"""The kernel API's view of a kernel: the ``ApiKernel`` record and the model clients see."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TypedDict

from fngw.kernels import Kernel


class KernelModel(TypedDict):
    """A kernel as ``GET /api/kernels/{id}`` answers it (Jupyter Server's kernel model)."""

    id: str
    name: str
    last_activity: str
    execution_state: str
    connections: int


def iso_now() -> str:
    """Now, as Jupyter Server writes ``last_activity``: ISO 8601, microseconds, ``Z``."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class ApiKernel:
    """A kernel started through the API, with what its model reports."""

    kernel: Kernel
    name: str
    execution_state: str = "starting"
    connections: int = 0
    last_activity: str = field(default_factory=iso_now)
    last_activity_monotonic: float = field(default_factory=time.monotonic)
    auto_restarts: int = 0
    status_listeners: list[Callable[[str], None]] = field(default_factory=list)

    @property
    def id(self) -> str:
        """The kernel's id (also its id in the REST API)."""
        return self.kernel.id

    def model(self) -> KernelModel:
        """The kernel model of the REST API."""
        return {
            "id": self.id,
            "name": self.name,
            "last_activity": self.last_activity,
            "execution_state": self.execution_state,
            "connections": self.connections,
        }

    def touch(self) -> None:
        """Record activity now (for last_activity and culling)."""
        self.last_activity = iso_now()
        self.last_activity_monotonic = time.monotonic()

    def announce(self, state: str) -> None:
        """Tell connected clients about a lifecycle change (``restarting``, ``dead``)."""
        self.execution_state = state
        for listener in list(self.status_listeners):
            listener(state)
