"""Kernel runtime: kernelspecs, kernel processes driven from greenlets, and self-healing pools.

Knows nothing of HTTP. Everything here must run in a gevent-friendly process: it uses gevent
primitives and ZeroMQ sockets waited on through the gevent hub (``channels.ChannelSocket``), created
after fork. (The gunicorn master imports none of it:
what it needs of kernels, reaping a dead worker's process groups, is in ``fngw.master``.)
"""

from __future__ import annotations

from .environment import kernel_environment
from .errors import (
    ExecutionTimeout,
    KernelDied,
    KernelError,
    KernelLost,
    KernelNoReply,
    KernelRestarting,
    KernelSeedError,
    KernelStartError,
    OutputLimitExceeded,
)
from .kernel import Kernel
from .messages import ExecutionError, ExecutionResult, SeedCell, strip_ansi
from .pool import (
    KernelPool,
    NoIdleKernel,
    PoolClosed,
    PoolError,
    PoolStats,
    PoolUnavailable,
    QueueFull,
    QueueTimeout,
)
from .prelude import cells_prelude, output_prelude
from .process import pid_alive
from .restart import KERNEL_API_KERNEL, POOL_SLOT, RestartPolicy
from .specs import KernelSpecNotFound, ResolvedSpec, installed_kernelspecs, match_kernelspec, resolve_kernelspec

__all__ = [
    "ExecutionError",
    "ExecutionResult",
    "ExecutionTimeout",
    "Kernel",
    "KernelDied",
    "KernelError",
    "KernelLost",
    "KernelNoReply",
    "KernelPool",
    "KernelRestarting",
    "KernelSeedError",
    "KernelSpecNotFound",
    "KernelStartError",
    "OutputLimitExceeded",
    "PoolClosed",
    "PoolError",
    "PoolStats",
    "PoolUnavailable",
    "NoIdleKernel",
    "QueueFull",
    "KERNEL_API_KERNEL",
    "POOL_SLOT",
    "QueueTimeout",
    "ResolvedSpec",
    "RestartPolicy",
    "SeedCell",
    "installed_kernelspecs",
    "kernel_environment",
    "match_kernelspec",
    "output_prelude",
    "cells_prelude",
    "pid_alive",
    "resolve_kernelspec",
    "strip_ansi",
]
