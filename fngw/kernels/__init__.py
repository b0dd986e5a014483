"""Kernel runtime: kernelspecs, kernel processes driven from greenlets, and self-healing pools.

Knows nothing of HTTP. Everything here must run in a gevent-friendly process: it uses gevent
primitives and ``zmq.green`` sockets, created after fork.
"""

from .environment import kernel_environment
from .kernel import (
    ExecutionError,
    ExecutionResult,
    ExecutionTimeout,
    Kernel,
    KernelDied,
    KernelError,
    KernelLost,
    KernelRestarting,
    KernelSeedError,
    KernelStartError,
    SeedCell,
    reap_runtime_dir,
)
from .pool import KernelPool, PoolClosed, PoolError, PoolStats, PoolUnavailable, QueueFull, QueueTimeout
from .specs import KernelSpecNotFound, ResolvedSpec, installed_kernelspecs, resolve_kernelspec

__all__ = [
    "ExecutionError",
    "ExecutionResult",
    "ExecutionTimeout",
    "Kernel",
    "KernelDied",
    "KernelError",
    "KernelLost",
    "KernelPool",
    "KernelRestarting",
    "KernelSeedError",
    "KernelSpecNotFound",
    "KernelStartError",
    "PoolClosed",
    "PoolError",
    "PoolStats",
    "PoolUnavailable",
    "QueueFull",
    "QueueTimeout",
    "ResolvedSpec",
    "SeedCell",
    "installed_kernelspecs",
    "kernel_environment",
    "reap_runtime_dir",
    "resolve_kernelspec",
]
