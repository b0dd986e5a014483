"""What the kernel API's registry raises; none of it knows HTTP (fngw.server.error_map does)."""

from __future__ import annotations

from fngw.kernels import KernelError


class KernelApiError(Exception):
    """Base; ``str(error)`` is the message for the client."""


class NotFound(KernelApiError):
    """No such kernel, or no such kernelspec among those allowed (the message lists them)."""


class Invalid(KernelApiError):
    """The client asked for something malformed (env values, kernel ids, paths, launch timeouts)."""


class ResourceLimit(KernelApiError):
    """``kernel_api.max_kernels`` kernels run already (across the instance's workers)."""


class LaunchTimeout(KernelApiError):
    """The kernel did not start (launch and seed) within its launch timeout; nothing is left of it."""


class RegistryUnavailable(KernelApiError):
    """The shared registry (Redis) cannot be reached: the kernel API answers 503 until it can."""


class HostedElsewhere(KernelApiError):
    """The kernel runs on another instance of the deployment, reached at ``address``."""

    def __init__(self, kernel_id: str, instance: str, address: str):
        super().__init__(f"kernel {kernel_id} runs on instance {instance}")
        self.kernel_id = kernel_id
        self.instance = instance
        self.address = address


class PeerUnavailable(KernelApiError):
    """Another instance of the deployment, which runs the kernel, cannot be reached."""


class ShuttingDown(KernelApiError):
    """The gateway began to shut down while the kernel started; it was stopped."""


class StartFailed(KernelApiError):
    """The kernel could not start; ``cause`` is the runtime's error (a failing seed names its cell)."""

    def __init__(self, message: str, cause: KernelError):
        super().__init__(message)
        self.cause = cause
