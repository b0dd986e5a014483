"""Python cells that cannot compile: found when the deployment is checked, not at the first request.

A kernel runs a cell as IPython does, so a cell is first transformed as IPython transforms it
(``%magic``, ``!shell``, ``%%cell`` magics become calls) and compiled with top-level ``await``
allowed; only what IPython itself would refuse is reported. Compiled with the gateway's
interpreter: a kernelspec that runs another Python version could accept or refuse a little more.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class CellSyntaxError:
    """Where a cell fails to compile: 1-based line and column within the cell's source."""

    cell_index: int
    line: int
    col: int
    message: str


def python_syntax_errors(cells: Mapping[int, str]) -> list[CellSyntaxError]:
    """The cells (index: source) that IPython could not run, in index order."""
    # IPython is ipykernel's dependency, so it is there; imported only when a check needs it.
    from IPython.core.inputtransformer2 import TransformerManager

    transformer = TransformerManager()
    found = []
    for index, source in sorted(cells.items()):
        try:
            code = transformer.transform_cell(source)
        except Exception:  # a transformer's own failure: the kernel would report it, not refuse the cell
            continue
        try:
            compile(code, f"<cell {index}>", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT, dont_inherit=True)
        except SyntaxError as exc:
            line = exc.lineno or 1
            found.append(CellSyntaxError(index, line, exc.offset or 1, _describe(exc)))
        except ValueError as exc:  # source with a NUL character
            found.append(CellSyntaxError(index, 1, 1, str(exc)))
    return found


def _describe(exc: SyntaxError) -> str:
    text = (exc.text or "").rstrip("\n").strip()
    return f"{type(exc).__name__}: {exc.msg}" + (f" in {text[:80]!r}" if text else "")
