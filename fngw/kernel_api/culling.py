"""Culling: deleting kernels that stayed idle too long, as Jupyter Server's kernel manager does."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

import gevent

if TYPE_CHECKING:
    from .registry import KernelRegistry

log = logging.getLogger("fngw.kernel_api")


def cull_idle_kernels(registry: KernelRegistry) -> None:
    """Every ``cull.interval`` seconds, delete this worker's kernels idle for ``cull.idle`` seconds
    (connected or busy ones too when ``cull.connected``/``cull.busy``); runs until the registry
    closes."""
    cull = registry.settings.cull
    while not registry.closed:
        gevent.sleep(cull.interval)
        now = time.monotonic()
        for entry in list(registry.kernels.values()):
            if now - entry.last_activity_monotonic < (cull.idle or 0):
                continue
            if entry.connections and not cull.connected:
                continue
            if entry.execution_state == "busy" and not cull.busy:
                continue
            log.info("kernel API: culling idle kernel %s", entry.id)
            registry.delete(entry.id)
