"""Code that fngw runs *inside* kernels, kept as real source files so that it is linted and tested
like the rest; the gateway reads these files as text and never imports them (they import IPython,
which exists only in the kernel's environment)."""

from __future__ import annotations

from importlib import resources


def source(name: str) -> str:
    """The text of ``name`` (a file of this folder)."""
    return resources.files(__name__).joinpath(name).read_text(encoding="utf-8")
