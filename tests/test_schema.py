"""The schema documents itself, the reference is generated from it, and its defaults are the loader's."""

from __future__ import annotations

import jsonschema
import pytest
from conftest import REPO, write_notebook

from fngw.manifest import load_manifest, manifest_schema, parse_duration, parse_size
from fngw.manifest.reference import schema_reference_markdown


def test_schema_is_valid_draft_2020_12():
    schema = manifest_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)


def _properties(schema, root, path="$"):
    if "$ref" in schema:
        target = root
        for part in schema["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        schema = target
    for name, prop in schema.get("properties", {}).items():
        yield f"{path}.{name}", prop
        yield from _properties(prop, root, f"{path}.{name}")
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict):
        yield from _properties(extra, root, f"{path}.*")


def test_every_property_has_a_description():
    root = manifest_schema()
    missing = [path for path, prop in _properties(root, root) if not prop.get("description")]
    assert missing == []


def test_reference_doc_is_generated_from_the_schema():
    on_disk = (REPO / "docs" / "manifest.md").read_text(encoding="utf-8")
    assert on_disk == schema_reference_markdown(), "regenerate: fngw schema --markdown > docs/manifest.md"


@pytest.fixture
def loaded(tmp_path):
    write_notebook(tmp_path / "nb.ipynb", ["# GET /x\nprint(1)"])
    (tmp_path / "fngw.yaml").write_text(
        "version: 1\nserver: {cors: {}}\nnotebooks:\n  nb: {path: nb.ipynb}\nkernel_api: {cull: {}}\n"
    )
    result = load_manifest(tmp_path / "fngw.yaml")
    assert result.problems == []
    return result.manifest


def test_documented_defaults_are_the_loaders_defaults(loaded):
    root = manifest_schema()
    nb = loaded.notebooks["nb"]
    api = loaded.kernel_api
    checks = {
        ("server", "base_url"): loaded.server.base_url,
        ("server", "max_body"): loaded.server.max_body,
        ("server", "cors", "allow_origin"): loaded.server.cors.allow_origin,
        ("server", "cors", "allow_credentials"): loaded.server.cors.allow_credentials,
        ("auth", "default"): loaded.auth.default.describe(),
        ("defaults", "timeout"): loaded.defaults.timeout,
        ("defaults", "tracebacks"): nb.tracebacks,
        ("defaults", "pool", "size"): nb.pool.size,
        ("defaults", "pool", "max_queue"): nb.pool.max_queue,
        ("defaults", "pool", "queue_timeout"): nb.pool.queue_timeout,
        ("notebooks", "mount"): nb.mount,
        ("notebooks", "download"): nb.download,
        ("kernel_api", "list_kernels"): api.list_kernels,
        ("kernel_api", "default_kernel"): api.default_kernel,
        ("kernel_api", "prewarm"): api.prewarm,
        ("kernel_api", "cull", "interval"): api.cull.interval,
        ("kernel_api", "cull", "connected"): api.cull.connected,
        ("kernel_api", "cull", "busy"): api.cull.busy,
    }
    converters = {
        "max_body": parse_size,
        "timeout": parse_duration,
        "queue_timeout": parse_duration,
        "interval": parse_duration,
        "allow_origin": lambda v: (v,),
    }
    for path, actual in checks.items():
        schema_path = path if path[0] != "notebooks" else ("notebooks", "*", path[1])
        documented = _documented(root, schema_path)
        expected = converters.get(path[-1], lambda v: v)(documented)
        assert actual == expected, path


def _documented(root, path):
    schema = root
    for part in path:
        schema = _deref(root, schema)
        schema = schema["additionalProperties"] if part == "*" else schema["properties"][part]
    return _deref(root, schema)["default"] if "default" not in schema else schema["default"]


def _deref(root, schema):
    while "$ref" in schema:
        target = root
        for piece in schema["$ref"].removeprefix("#/").split("/"):
            target = target[piece]
        schema = {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
    return schema
