"""The Jupyter-compatible kernel API: REST resources, sessions and websocket channels.

``KernelApi`` owns one worker's registry, sessions and channel hubs; ``routes`` lists its resources
(the websocket upgrade among them) for the composition root.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fngw.manifest import CorsSettings, KernelApiSettings, join_url

from . import resources
from .handoff import WorkerHandoff
from .hubs import MAX_QUEUE, ChannelHubs
from .registry import KernelRegistry
from .sessions import SessionStore

__all__ = ["KernelApi", "KernelRegistry"]


class KernelApi:
    """One worker's kernel API: its registry, sessions and websocket hubs, and their routes."""

    def __init__(
        self,
        settings: KernelApiSettings,
        registry: KernelRegistry,
        cors: CorsSettings | None,
        base_url: str,
        max_websocket_queue: int = MAX_QUEUE,
        handoff_dir: Path | None = None,
    ):
        self.settings = settings
        self.registry = registry
        self.sessions = SessionStore(registry)
        self.cors = cors
        self.base_url = base_url
        self.hubs = ChannelHubs(registry, max_websocket_queue)
        # With several workers: each kernel's websockets are served by the worker that answers for it.
        self.handoff = WorkerHandoff(handoff_dir, registry, self.hubs) if handoff_dir is not None else None

    def start(self) -> None:
        """Take websockets other workers hand over (in the worker, after the fork)."""
        if self.handoff is not None:
            self.handoff.start()

    def routes(self) -> list[tuple[Any, ...]]:
        """``(URL template, Falcon resource[, responder suffix])`` for every route of the kernel API."""
        access, cors, registry, base = self.settings.auth, self.cors, self.registry, self.base_url
        specs = resources.KernelSpecs(access, cors, registry, base)
        sessions = resources.Sessions(access, cors, self.sessions, base)
        return [
            (join_url(base, "api"), resources.ApiRoot(access, cors)),
            (join_url(base, "api/kernelspecs"), specs),
            (join_url(base, "api/kernelspecs/{name}"), specs),
            (join_url(base, "kernelspecs/{name}/{filename}"), resources.KernelSpecFile(access, cors, registry)),
            (join_url(base, "api/kernels"), resources.KernelCollection(access, cors, registry, base)),
            (join_url(base, "api/kernels/{kernel_id}"), resources.KernelItem(access, cors, registry)),
            (
                join_url(base, "api/kernels/{kernel_id}/channels"),
                resources.Channels(access, cors, registry, self.hubs, self.handoff),
            ),
            (join_url(base, "api/kernels/{kernel_id}/{action}"), resources.KernelAction(access, cors, registry)),
            (join_url(base, "api/sessions"), sessions),
            (join_url(base, "api/sessions/{session_id}"), sessions, "item"),
        ]

    def close_websockets(self) -> None:
        """Take no more handed-over websockets, and tell every websocket client that the gateway is
        going away (1001)."""
        if self.handoff is not None:
            self.handoff.stop()
        self.hubs.close_all()
