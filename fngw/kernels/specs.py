"""Kernelspecs: which are installed, and the command line and environment to start one.

Reads directories only; starts nothing.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel


class KernelSpecNotFound(LookupError):
    """No installed kernelspec has this name."""


@dataclass(frozen=True)
class ResolvedSpec:
    """A kernelspec ready to launch: its argv template and the settings fngw needs."""

    name: str
    argv: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)
    language: str = ""
    display_name: str = ""
    interrupt_mode: str = "signal"
    resource_dir: Path | None = None

    def command(self, connection_file: str) -> list[str]:
        """The kernel's argv with the connection file (and resource dir) filled in."""
        values = {"connection_file": connection_file, "resource_dir": str(self.resource_dir or "")}
        return [arg.format(**values) if "{" in arg else arg for arg in self.argv]


def installed_kernelspecs() -> set[str]:
    """Names of the kernelspecs jupyter_client can find (``python3`` is always among them when
    ipykernel is installed, as jupyter_client provides its native kernel)."""
    return set(KernelSpecManager().find_kernel_specs())


def match_kernelspec(name: str, names: Iterable[str]) -> str | None:
    """The one of ``names`` that ``name`` means, ignoring case as jupyter_client, Jupyter Server
    and Kernel Gateway do (``Python3`` is ``python3``), or None."""
    folded = name.casefold()
    return next((candidate for candidate in names if candidate.casefold() == folded), None)


def resolve_kernelspec(name: str) -> ResolvedSpec:
    """The kernelspec ``name`` with ``python``/``python3`` in argv[0] bound to this interpreter, so
    kernels run with the gateway's own environment rather than whatever ``python`` is on PATH."""
    try:
        spec = KernelSpecManager().get_kernel_spec(name)  # folds case itself: Python3 is python3
    except NoSuchKernel:
        listing = ", ".join(sorted(installed_kernelspecs())) or "none"
        raise KernelSpecNotFound(f"kernelspec {name!r} is not installed (installed: {listing})") from None
    name = name.lower()  # the installed name, as jupyter_client lists it
    argv = list(spec.argv)
    if argv and os.path.basename(argv[0]) in ("python", "python3", f"python{sys.version_info[0]}"):
        argv[0] = sys.executable
    return ResolvedSpec(
        name=name,
        argv=tuple(argv),
        env=dict(spec.env or {}),
        language=spec.language or "",
        display_name=spec.display_name or name,
        interrupt_mode=spec.interrupt_mode or "signal",
        resource_dir=Path(spec.resource_dir) if spec.resource_dir else None,
    )
