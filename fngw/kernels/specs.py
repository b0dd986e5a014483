"""Kernelspecs installed on this machine (reads directories only; starts nothing)."""

from __future__ import annotations

from jupyter_client.kernelspec import KernelSpecManager


def installed_kernelspecs() -> set[str]:
    """Names of the kernelspecs jupyter_client can find (``python3`` is always among them when
    ipykernel is installed, as jupyter_client provides its native kernel)."""
    return set(KernelSpecManager().find_kernel_specs())
