"""Typed endpoints: what a manifest (or a notebook's OpenAPI document) declares about requests and
responses, and the checks made with it. Knows nothing of HTTP servers: the endpoint handler calls
it, and fngw.server.error_map turns its errors into 415, 422 and 500."""

from __future__ import annotations

from .coercion import coerce_scalar, coerce_values
from .errors import ContractError, RequestRejected, ResponseBroken, SchemaUnusable, UnsupportedMediaType
from .model import MISSING, Contract, Example, Parameter, ResponseContract, Schema, SchemaSet
from .requests import RequestValidator, check_media_type, media_type
from .responses import ResponseValidator

__all__ = [
    "MISSING",
    "Contract",
    "ContractError",
    "Example",
    "Parameter",
    "RequestRejected",
    "RequestValidator",
    "ResponseBroken",
    "ResponseContract",
    "ResponseValidator",
    "Schema",
    "SchemaSet",
    "SchemaUnusable",
    "UnsupportedMediaType",
    "check_media_type",
    "coerce_scalar",
    "coerce_values",
    "media_type",
]
