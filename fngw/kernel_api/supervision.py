"""Supervision of kernel API kernels that die on their own: restarted and re-seeded under the
shared restart policy, then declared dead (their clients see ``dead``) when it gives up."""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING

from fngw.kernels import KERNEL_API_KERNEL, KernelError

if TYPE_CHECKING:
    from .models import ApiKernel
    from .registry import KernelRegistry

log = logging.getLogger("fngw.kernel_api")


def restart_after_death(registry: KernelRegistry, entry: ApiKernel) -> None:
    """Restart ``entry``'s kernel, which died by itself, at most ``KERNEL_API_KERNEL.limit`` times
    over its life (``entry.auto_restarts`` counts them); its clients see ``restarting``, then
    ``idle`` or ``dead``. A kernel another worker deleted or restarted meanwhile is let go instead."""
    if registry.closed or registry.kernels.get(entry.id) is not entry:
        return
    shared = registry.shared
    if shared is not None:
        record = shared.read(entry.id)
        if record is None or record.get("owner") != os.getpid():
            # Deleted, or restarted, by another worker: let go; clients reconnect to adopt it anew.
            registry.kernels.pop(entry.id, None)
            entry.announce("dead" if record is None else "restarting")
            for listener in list(entry.status_listeners):
                listener("detached")
            return
    for _ in KERNEL_API_KERNEL.attempts(lambda: registry.closed, done=entry.auto_restarts):
        entry.auto_restarts += 1
        entry.announce("restarting")
        try:
            entry.kernel.restart()
        except KernelError as exc:
            log.error("kernel API: restarting kernel %s failed: %s", entry.id, exc)
            continue
        registry.publish(entry)
        entry.execution_state = "idle"
        return
    registry.kernels.pop(entry.id, None)
    if shared is not None:
        shared.remove(entry.id)
    entry.announce("dead")
