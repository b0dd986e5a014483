"""Kernel runtime: kernelspecs, kernel processes driven from greenlets, and self-healing pools.

Knows nothing of HTTP. Everything here must run in a gevent-friendly process: it uses gevent
primitives and ``zmq.green`` sockets, created after fork.

Names are imported on first use, so that ``fngw.kernels.reaper`` stays importable in a gunicorn
master without importing jupyter_client there.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "kernel_environment": "environment",
    "ExecutionError": "messages",
    "ExecutionResult": "messages",
    "ExecutionTimeout": "errors",
    "Kernel": "kernel",
    "KernelDied": "errors",
    "KernelError": "errors",
    "KernelLost": "errors",
    "KernelRestarting": "errors",
    "KernelSeedError": "errors",
    "KernelStartError": "errors",
    "OutputLimitExceeded": "errors",
    "SeedCell": "messages",
    "KernelPool": "pool",
    "PoolClosed": "pool",
    "PoolError": "pool",
    "PoolStats": "pool",
    "PoolUnavailable": "pool",
    "QueueFull": "pool",
    "QueueTimeout": "pool",
    "output_prelude": "prelude",
    "reap_runtime_dir": "reaper",
    "KernelSpecNotFound": "specs",
    "ResolvedSpec": "specs",
    "installed_kernelspecs": "specs",
    "match_kernelspec": "specs",
    "resolve_kernelspec": "specs",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'fngw.kernels' has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
