"""Files fngw ships: the manifest schema, the default manifest and the hello example.

In a source checkout they live at the repository root (``schemas/``, ``config/``, ``examples/``);
in an installed wheel they are packaged under ``fngw/_data`` with the same relative layout.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def data_root() -> Path:
    packaged = _PACKAGE / "_data"
    if (packaged / "schemas").is_dir():
        return packaged
    return _PACKAGE.parent


def schema_path() -> Path:
    return data_root() / "schemas" / "manifest.v1.schema.json"


def default_manifest_path() -> Path:
    return data_root() / "config" / "fngw.yaml"
