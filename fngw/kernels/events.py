"""What a ``Kernel`` tells the code around it: its death, and the messages it publishes."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from .protocol import Message

if TYPE_CHECKING:
    from .kernel import Kernel


class KernelEvents:
    """The listeners of one kernel (the ``Kernel`` calls them from its reader and monitor greenlets:
    a listener must not block)."""

    def __init__(self) -> None:
        self._death_callbacks: list[Callable[[Kernel], None]] = []
        self._iopub_listeners: list[Callable[[Kernel, Message], None]] = []
        self._message_listeners: list[Callable[[Kernel, str, Message], None]] = []

    def on_death(self, callback: Callable[[Kernel], None]) -> None:
        """Call ``callback(kernel)`` when the process dies unexpectedly."""
        self._death_callbacks.append(callback)

    def on_iopub(self, listener: Callable[[Kernel, Message], None]) -> None:
        """Call ``listener(kernel, msg)`` for every iopub message (for websocket clients)."""
        self._iopub_listeners.append(listener)

    def on_message(self, listener: Callable[[Kernel, str, Message], None]) -> None:
        """Call ``listener(kernel, channel, msg)`` for shell, control and stdin messages that answer
        requests sent with ``send_message`` (that is, not this object's own requests)."""
        self._message_listeners.append(listener)
