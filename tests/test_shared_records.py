"""The per-instance kernel records: a bad or stale record is a 404, never a 500."""

from __future__ import annotations

import pytest

from fngw.kernel_api.registry import KernelRegistry, NotFound
from fngw.kernel_api.shared import SharedKernels
from fngw.manifest import KernelApiSettings


@pytest.fixture
def registry(tmp_path):
    return KernelRegistry(KernelApiSettings(), runtime_dir=tmp_path / "rt", shared=SharedKernels(tmp_path / "shared"))


@pytest.mark.parametrize(
    "record",
    [
        {"id": "k1", "name": "python3", "owner": 1},  # no pid, no connection
        {"id": "k1", "name": 3, "pid": 1, "owner": 1, "connection": {}},
        {"id": "k1", "name": "python3", "pid": 999_999_999, "owner": 1, "connection": {"key": "x"}},  # gone
    ],
)
def test_unusable_records_are_not_found_and_dropped(registry, record):
    registry.shared.write(record)
    with pytest.raises(NotFound):
        registry.get("k1")
    assert registry.shared.read("k1") is None
    assert registry.entries() == []


def test_unreadable_record_file_is_not_found(registry):
    (registry.shared.folder / "k2.json").write_text("{not json")
    with pytest.raises(NotFound):
        registry.get("k2")
