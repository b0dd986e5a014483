"""What the registry asks of the deployment's other instances (issue 17): their kernels' models,
and to delete, interrupt or restart a kernel they run. ``fngw.kernel_api.relay`` answers it over
HTTP; the registry knows only this protocol."""

from __future__ import annotations

from typing import Protocol

from .models import KernelModel


class Peers(Protocol):
    """The other instances, each reached at its ``address``; raise ``NotFound`` when the instance
    does not know the kernel and ``PeerUnavailable`` when it cannot be reached."""

    def model(self, address: str, kernel_id: str, /) -> KernelModel:
        """The kernel's model, as the instance that runs it reports it now."""

    def delete(self, address: str, kernel_id: str, /) -> None:
        """Shut the kernel down."""

    def interrupt(self, address: str, kernel_id: str, /) -> None:
        """Interrupt the kernel's running cell."""

    def restart(self, address: str, kernel_id: str, /) -> KernelModel:
        """Restart the kernel; its model after the restart."""

    def trusts(self, presented: str, /) -> bool:
        """Whether ``presented`` is the secret the instances vouch for their calls with."""
