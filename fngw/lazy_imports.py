"""Imports deferred until used, where a dependency's import costs a start too much.

jsonschema imports ``rfc3987_syntax`` when it is installed (its ``format-nongpl`` extra, which
jupyter_server's dependencies bring in), and that module compiles a Lark grammar at import: 0.9 s
on a 2-core machine, in every gunicorn worker, every ``fngw validate`` and every reload's new worker,
for a check (the ``iri`` and ``iri-reference`` formats) few schemas use. The stand-in below takes
its place until a schema checks one of those formats; then the real module is imported and used,
so what is validated does not change.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from typing import Any

DEFERRED = "rfc3987_syntax"


def defer_iri_grammar() -> None:
    """Put the stand-in in ``sys.modules`` unless the module is loaded already or not installed."""
    if DEFERRED in sys.modules:
        return
    try:
        spec = importlib.util.find_spec(DEFERRED)
    except (ImportError, ValueError):
        return
    if spec is None:
        return
    stand_in = types.ModuleType(DEFERRED, "fngw's stand-in until first use (fngw.lazy_imports)")

    def real() -> types.ModuleType:
        if sys.modules.get(DEFERRED) is stand_in:
            del sys.modules[DEFERRED]
        return importlib.import_module(DEFERRED)

    def is_valid_syntax(term: str, value: str) -> Any:
        return real().is_valid_syntax(term, value)

    stand_in.is_valid_syntax = is_valid_syntax  # type: ignore[attr-defined]  # what jsonschema imports
    stand_in.__getattr__ = lambda name: getattr(real(), name)  # type: ignore[method-assign]  # anything else
    stand_in.__path__ = list(spec.submodule_search_locations or [])
    sys.modules[DEFERRED] = stand_in
