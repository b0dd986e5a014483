"""The errors the kernel runtime raises; none of them knows HTTP (the server maps them)."""

from __future__ import annotations

from collections.abc import Sequence


class KernelError(Exception):
    """Base of the errors a kernel raises."""


class KernelStartError(KernelError):
    """The kernel process could not be started or did not become ready."""


class KernelSeedError(KernelStartError):
    """A seed cell failed; names the notebook, the cell index and the kernel's error."""

    def __init__(self, label: str, cell_index: int, ename: str, evalue: str, traceback: Sequence[str] = ()):
        self.label = label
        self.cell_index = cell_index
        self.ename = ename
        self.evalue = evalue
        self.traceback = list(traceback)
        super().__init__(f"seeding {label} failed at cell {cell_index}: {ename}: {evalue}")


class KernelLost(KernelError):
    """The kernel went away. ``started`` is False only when the request was never sent (the kernel
    was already gone): then running it elsewhere cannot run it twice. Once sent, a request may have
    run, even partly: a cell that kills its kernel dies before the kernel reports it busy."""

    def __init__(self, message: str, started: bool = True):
        super().__init__(message)
        self.started = started


class KernelDied(KernelLost):
    """The kernel process exited (or was killed) while a request was pending or was made."""


class KernelRestarting(KernelLost):
    """The kernel was restarted while the request was pending."""


class KernelNoReply(KernelError):
    """The kernel reported the request done (iopub ``idle``) but never sent its reply. ipykernel does
    this when an interrupt lands outside the cell (while it sends the reply, say): it logs
    "KeyboardInterrupt caught in kernel" and goes idle. The kernel itself still serves."""


class ExecutionTimeout(KernelError):
    """The execution did not finish within ``timeout`` seconds; the kernel may still be busy."""

    def __init__(self, message: str, timeout: float | None = None):
        super().__init__(message)
        self.timeout = timeout


class OutputLimitExceeded(KernelError):
    """The execution produced more output than its caller would collect (``max_output`` bytes);
    like a timeout, the kernel is still running the code: interrupt or restart it."""

    def __init__(self, message: str, limit: int):
        super().__init__(message)
        self.limit = limit
