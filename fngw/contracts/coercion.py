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
import re
from decimal import Decimal
from typing import Any

from .model import Schema

# JSON's number grammar, with leading zeros allowed (a query's "?page=07" means 7)
_JSON_NUMBER = re.compile(r"-?[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?\Z", re.ASCII)
_JSON_INTEGER = re.compile(r"-?[0-9]+\Z", re.ASCII)
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


def coerce_values(values: list[str], schema: Schema, separator: str | None = None) -> Any:
    """A parameter given ``values`` (one per occurrence): a list for an ``array`` schema (its items
    converted; with a ``separator``, each value is also split at it, as a header lists values at
    commas or Swagger's ``collectionFormat: csv`` asks), else the single value converted. Several
    values for a non-array schema stay a list, which validation then refuses."""
    if "array" in types_of(schema):
        items = schema.get("items", True) if isinstance(schema, dict) else True
        texts = [part.strip() for v in values for part in v.split(separator)] if separator else values
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
    if kind in ("integer", "number"):
        # JSON's number grammar, ASCII digits only: Python's int() and float() also take "1_000",
        # Arabic-Indic and full-width digits, "inf" and "nan", none of which a JSON client means.
        if not _JSON_NUMBER.match(stripped):
            return _NO
        if _JSON_INTEGER.match(stripped):
            return int(stripped)
        exact = Decimal(stripped)
        if kind == "integer":  # "2.0" and "1e3" are integers in JSON Schema; kept exact
            return int(exact) if exact == exact.to_integral_value() else _NO
        number = float(stripped)
        return number if math.isfinite(number) else _NO
    if kind == "boolean":
        folded = stripped.lower()
        return True if folded in _TRUE else False if folded in _FALSE else _NO
    if kind == "null":
        return None if stripped.lower() in ("", "null") else _NO
    return _NO  # object, array items of arrays: left as text
