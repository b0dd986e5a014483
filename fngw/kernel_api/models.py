"""The kernel API's view of a kernel: the ``ApiKernel`` record and the model clients see."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, TypedDict

if TYPE_CHECKING:  # typing has it from Python 3.11; fngw runs on 3.10 too
    from typing_extensions import NotRequired

from fngw.kernels import Kernel


class KernelModel(TypedDict):
    """A kernel as ``GET /api/kernels/{id}`` answers it (Jupyter Server's kernel model)."""

    id: str
    name: str
    last_activity: str | None  # None for a dead kernel a session still names
    execution_state: str
    connections: int


class KernelRecord(TypedDict):
    """A kernel's shared record (``{instance}/kernel-api/{id}.json``), for the instance's other
    workers. While its start runs it is ``pending`` with only ``id`` and ``owner`` (the starting
    worker's pid); then it has the kernelspec ``name``, the kernel's ``pid`` and its ``connection``
    info (ports and key: a secret)."""

    id: str
    owner: int
    pending: NotRequired[bool]
    name: NotRequired[str]
    pid: NotRequired[int]
    connection: NotRequired[dict[str, Any]]
    instance: NotRequired[str]  # in a Redis registry: the instance that runs it
    execution_state: NotRequired[str]  # as last published, for other instances' listings
    last_activity: NotRequired[str]
    connections: NotRequired[int]


class SessionRecord(TypedDict):
    """A session as stored: ``kernel_id``/``kernel_name`` are None while its kernel starts, since
    ``pending_since`` (Unix time, seconds; None once it has its kernel)."""

    id: str
    path: str
    name: str
    type: str
    kernel_id: str | None
    kernel_name: str | None
    pending_since: float | None


class SessionModel(TypedDict):
    """A session as ``GET /api/sessions/{id}`` answers it (Jupyter Server's session model, with the
    legacy ``notebook`` object)."""

    id: str
    path: str
    name: str
    type: str
    kernel: KernelModel
    notebook: dict[str, str]


@dataclass(frozen=True)
class RemoteKernel:
    """A kernel another instance of the deployment runs, as that instance (or its record) reports
    it; ``address`` reaches that instance."""

    id: str
    name: str
    address: str
    fields: KernelModel

    def model(self) -> KernelModel:
        """The kernel model of the REST API."""
        return self.fields


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
