"""The manifest reference (docs/manifest.md), generated from the JSON Schema so the two cannot drift."""

from __future__ import annotations

import json
from typing import Any

from .loader import manifest_schema

HEADER = """# Manifest reference (version 1)

<!-- Generated from schemas/manifest.v1.schema.json by `fngw schema --markdown`; do not edit by hand.
     A test fails when this file and the schema disagree. -->

{description}

Durations are seconds (a number) or strings such as `500ms`, `30s`, `5m`, `1h`. Sizes are bytes (an
integer) or strings such as `512KiB`, `10MB`, `1GiB`. Every mapping rejects unknown keys. Paths are
relative to the manifest's folder. Settings inherit: `defaults` -> notebook -> endpoint.
"""


def _resolve(schema: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if not ref:
        return schema
    target = root
    for part in ref.removeprefix("#/").split("/"):
        target = target[part]
    merged = dict(_resolve(target, root))
    merged.update({k: v for k, v in schema.items() if k != "$ref"})
    return merged


def _type_of(schema: dict[str, Any], root: dict[str, Any]) -> str:
    ref = schema.get("$ref", "")
    if ref.endswith("/duration"):
        return "duration"
    if ref.endswith("/size"):
        return "size"
    if ref.endswith("/access"):
        return '`"public"` or list of token names'
    schema = _resolve(schema, root)
    if "const" in schema:
        return f"`{json.dumps(schema['const'])}`"
    if "enum" in schema:
        return " \\| ".join(f"`{v}`" for v in schema["enum"])
    if "anyOf" in schema or "oneOf" in schema:
        return schema.get("x-expect", "see description")
    kind = schema.get("type", "any")
    if kind == "array":
        return f"list of {_type_of(schema.get('items', {}), root)}"
    if kind == "object" and isinstance(schema.get("additionalProperties"), dict):
        return f"mapping of name to {_type_of(schema['additionalProperties'], root)}"
    if kind == "object":
        return "mapping"
    return " or ".join(kind) if isinstance(kind, list) else kind


def _rows(schema: dict[str, Any], root: dict[str, Any], prefix: str, out: list[str]) -> None:
    schema = _resolve(schema, root)
    required = set(schema.get("required", ()))
    for name, prop in schema.get("properties", {}).items():
        path = f"{prefix}.{name}" if prefix else name
        resolved = _resolve(prop, root)
        default = f"`{json.dumps(resolved['default'])}`" if "default" in resolved else ""
        if name in required:
            default = "required"
        description = prop.get("description") or resolved.get("description", "")
        out.append(f"| `{path}` | {_type_of(prop, root)} | {default} | {description} |")
        if resolved.get("type") == "object" and "properties" in resolved:
            _rows(resolved, root, path, out)
        for alternative in resolved.get("oneOf", ()):  # `true` or settings: the settings' keys
            settings = _resolve(alternative, root)
            if settings.get("type") == "object" and "properties" in settings:
                _rows(settings, root, path, out)
        extra = resolved.get("additionalProperties")
        if isinstance(extra, dict) and "properties" in _resolve(extra, root):
            _rows(extra, root, f"{path}.<name>", out)


def schema_reference_markdown() -> str:
    root = manifest_schema()
    lines = [HEADER.format(description=root["description"]).rstrip(), ""]
    lines += ["| key | type | default | meaning |", "| --- | --- | --- | --- |"]
    _rows(root, root, "", lines)
    return "\n".join(lines) + "\n"
