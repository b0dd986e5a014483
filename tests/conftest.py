from __future__ import annotations

import contextlib
import os
import signal
import uuid
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

REPO = Path(__file__).resolve().parent.parent

# Every process this test session starts inherits this mark (gateways pass it on to their kernels),
# so the session can prove at the end that it left no kernel running.
SESSION_MARK = f"FNGWTEST_SESSION={uuid.uuid4().hex}"
os.environ["FNGWTEST_SESSION"] = SESSION_MARK.split("=", 1)[1]


def leftover_kernels() -> list[tuple[int, str]]:
    """Kernel processes started during this session that are still running."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if SESSION_MARK.encode() in environ:
            found.append((int(entry.name), cmdline.strip()))
    return found


def pytest_sessionfinish(session, exitstatus):
    left = leftover_kernels()
    if left:
        print("\nprocesses left running by the test session (now killed):")
        for pid, cmdline in left:
            print(f"  {pid}: {cmdline}")
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        session.exitstatus = 1


def write_notebook(
    path: Path, cells: list[str], *, language: str = "python", kernelspec: str | None = "python3"
) -> Path:
    """Write a notebook; a cell given as ``"md: text"`` is markdown, every other one is code."""
    metadata: dict = {"language_info": {"name": language}}
    if kernelspec:
        metadata["kernelspec"] = {"name": kernelspec, "display_name": kernelspec, "language": language}
    nb = new_notebook(metadata=metadata)
    nb.cells = [new_markdown_cell(c[4:]) if c.startswith("md: ") else new_code_cell(c) for c in cells]
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(path))
    return path


@pytest.fixture
def notebook(tmp_path: Path):
    """``notebook("name.ipynb", [cells...], **kw)`` writes a notebook beside the test's manifest."""

    def make(name: str, cells: list[str], **kw) -> Path:
        return write_notebook(tmp_path / name, cells, **kw)

    return make


@pytest.fixture
def manifest(tmp_path: Path):
    """``manifest(text)`` writes ``fngw.yaml`` in the test's folder and returns its path."""

    def make(text: str, name: str = "fngw.yaml") -> Path:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return path

    return make


@pytest.fixture(scope="session")
def redis_server():
    """One redis-server for the session (tests use their own key prefixes or flush it)."""
    from services import RedisServer

    server = RedisServer()
    yield server
    server.close()
