"""From the strings of a URL and its headers to the values their schemas describe.

Path, query and header values arrive as text. Before validation each is converted by the ``type``
its schema names: ``integer`` (``"42"``), ``number`` (``"2.5"``, ``"1e3"``), ``boolean``
(``true/false``, ``1/0``, ``yes/no``, ``on/off``, any case), ``null`` (``""`` or ``null``), and
``array`` (a query name given several times, or one value split at commas for a header), whose
items are converted by ``items``. A value that converts to none of the types stays a string, so
validation reports it against the schema. Schemas without a ``type`` (``$ref``, ``anyOf``) leave
the text as it is.
"""

from __future__ import annotations

import math
from typing import Any

from .model import Schema

_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})


def types_of(schema: Schema) -> tuple[str, ...]:
    """The types ``schema`` names at its top (``type: [integer, "null"]`` gives both)."""
    if not isinstance(schema, dict):
        return ()
    named = schema.get("type")
    if isinstance(named, str):
        return (named,)
    if isinstance(named, list):
        return tuple(t for t in named if isinstance(t, str))
    return ()


def coerce_scalar(text: str, schema: Schema) -> Any:
    """``text`` converted to the first of the schema's types it is valid text for; else ``text``."""
    for kind in types_of(schema):
        converted = _convert(text, kind)
        if converted is not _NO:
            return converted
    return text


def coerce_values(values: list[str], schema: Schema, split_commas: bool = False) -> Any:
    """A parameter given ``values`` (one per occurrence): a list for an ``array`` schema (its items
    converted; ``split_commas`` also splits each value at commas, as headers list values), else
    the single value converted. Several values for a non-array schema stay a list, which validation
    then refuses."""
    if "array" in types_of(schema):
        items = schema.get("items", True) if isinstance(schema, dict) else True
        texts = [part.strip() for v in values for part in v.split(",")] if split_commas else values
        return [coerce_scalar(t, items) for t in texts]
    if len(values) == 1:
        return coerce_scalar(values[0], schema)
    return [coerce_scalar(v, schema) for v in values]


class _Sentinel:
    pass


_NO: Any = _Sentinel()


def _convert(text: str, kind: str) -> Any:
    stripped = text.strip()
    if kind == "string":
        return text
    if kind == "integer":
        try:
            return int(stripped, 10)
        except ValueError:
            try:  # "2.0" is an integer in JSON Schema
                number = float(stripped)
            except ValueError:
                return _NO
            return int(number) if math.isfinite(number) and number.is_integer() else _NO
    if kind == "number":
        try:
            number = float(stripped)
        except ValueError:
            return _NO
        if not math.isfinite(number):
            return _NO  # JSON has no NaN or infinity
        return int(number) if number.is_integer() and "." not in stripped and "e" not in stripped.lower() else number
    if kind == "boolean":
        folded = stripped.lower()
        return True if folded in _TRUE else False if folded in _FALSE else _NO
    if kind == "null":
        return None if stripped.lower() in ("", "null") else _NO
    return _NO  # object, array items of arrays: left as text
