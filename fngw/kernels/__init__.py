"""Kernel runtime: kernelspecs, kernel processes, channels and pools. Knows nothing of HTTP."""

from .specs import installed_kernelspecs

__all__ = ["installed_kernelspecs"]
