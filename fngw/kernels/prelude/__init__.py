"""Code that fngw runs *inside* the kernels it starts, before their seed cells.

Kept as real source files, linted like the rest; the gateway reads them as text and never imports
them (they import IPython, which exists only in the kernel's environment).
"""

from __future__ import annotations

from importlib import resources

# By the kernelspec's language: which prelude bounds and isolates its output.
_OUTPUT_PRELUDES = {"python": "output.py", "ipython": "output.py", "python3": "output.py"}
_IPYTHON = frozenset(_OUTPUT_PRELUDES)  # the languages whose kernels run IPython


def source(name: str) -> str:
    """The text of ``name`` (a file of this folder)."""
    return resources.files(__name__).joinpath(name).read_text(encoding="utf-8")


def output_prelude(language: str, *, isolate: bool) -> str | None:
    """Code for ``language``'s kernels that cuts stream output into messages of at most 256 KiB and,
    with ``isolate`` (pool kernels), keeps only what the running cell itself produced; see
    ``output.py``. None where fngw has no prelude for the language: output is then attributed by
    the kernel's ``parent_header`` alone, in messages as large as the kernel makes them."""
    name = _OUTPUT_PRELUDES.get(language.lower())
    if name is None:
        return None
    return f"{source(name)}\n_fngw_output(isolate={isolate!r})\ndel _fngw_output\n"


def cells_prelude(language: str, *, keep: int = 32, spare: int = 0) -> str | None:
    """Code for ``language``'s pool kernels that forgets the source of cells run without history
    (requests) once ``keep`` newer ones have run, where the kernel would keep every one, except the
    ``spare`` cells that follow it (the seed cells); see ``cells.py``. None where fngw has none for
    the language."""
    if language.lower() not in _IPYTHON:
        return None
    return f"{source('cells.py')}\n_fngw_cells(keep={keep!r}, spare={spare!r})\ndel _fngw_cells\n"
