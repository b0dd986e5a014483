"""Kernels belong to the gunicorn worker that started them, and never outlive it."""

from __future__ import annotations

import os
import re
import signal
import time

import pytest
from conftest import write_notebook
from gateway import Gateway, children_of, gateway_env, running

SEED_WITH_CHILD = "import subprocess\nhelper = subprocess.Popen(['sleep', '600'])"


def wait_for(predicate, timeout: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"{what} not reached within {timeout}s"
        time.sleep(0.05)


@pytest.fixture
def gateway(tmp_path):
    write_notebook(tmp_path / "nb.ipynb", [SEED_WITH_CHILD, "# GET /x\nprint(1)"])
    (tmp_path / "fngw.yaml").write_text("version: 1\nnotebooks:\n  nb: {path: nb.ipynb, pool: {size: 2}}\n")
    gw = Gateway(env=gateway_env(FNGW_MANIFEST=str(tmp_path / "fngw.yaml")))
    yield gw
    gw.stop()


def kernel_tree(worker: int) -> tuple[list[int], list[int]]:
    kernels = [p for p in children_of(worker) if running(p)]
    helpers = [c for k in kernels for c in children_of(k) if running(c)]
    return kernels, helpers


def test_sigkilled_worker_leaves_no_kernel_and_no_kernel_child(gateway):
    gateway.wait_ready("/_fngw/ready")
    (worker,) = children_of(gateway.proc.pid)
    kernels, helpers = kernel_tree(worker)
    assert len(kernels) == 2 and len(helpers) == 2
    os.kill(worker, signal.SIGKILL)
    wait_for(lambda: not any(running(p) for p in kernels + helpers), what="old kernels gone")
    # gunicorn replaces the worker, which starts a fresh pool
    wait_for(lambda: [w for w in children_of(gateway.proc.pid) if w != worker], what="a new worker")
    gateway.wait_ready("/_fngw/ready")
    (new_worker,) = children_of(gateway.proc.pid)
    new_kernels, new_helpers = kernel_tree(new_worker)
    assert len(new_kernels) == 2
    assert gateway.stop() == 0
    assert not any(running(p) for p in new_kernels + new_helpers)


def test_sigterm_shuts_kernels_down_and_removes_their_files(gateway):
    gateway.wait_ready("/_fngw/ready")
    (worker,) = children_of(gateway.proc.pid)
    kernels, helpers = kernel_tree(worker)
    runtime = f"/tmp/fngw-{gateway.proc.pid}"
    assert os.path.isdir(runtime)
    started = time.monotonic()
    assert gateway.stop() == 0
    assert time.monotonic() - started < 10
    assert not any(running(p) for p in kernels + helpers)
    assert not os.path.exists(runtime)


def test_ready_reports_a_failing_seed_with_its_cell(tmp_path):
    write_notebook(tmp_path / "nb.ipynb", ["import json", "x = 1\nimport no_such_module", "# GET /x\nprint(1)"])
    (tmp_path / "fngw.yaml").write_text("version: 1\nnotebooks:\n  nb: {path: nb.ipynb}\n")
    with Gateway(env=gateway_env(FNGW_MANIFEST=str(tmp_path / "fngw.yaml"))) as gw:
        gw.wait_ready()
        deadline = time.monotonic() + 30
        while True:
            status, body = gw.get_json("/_fngw/ready")
            if "failed at cell" in str(body) or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert status == 503
        assert "seeding notebook 'nb' failed at cell 1: ModuleNotFoundError" in body["missing"][0]
        assert body["status"] == "failing"  # not "starting": waiting will not help
        place = re.match(rf"{re.escape(str(tmp_path / 'nb.ipynb'))}:(\d+):(\d+): pool nb:", body["missing"][0])
        assert place is not None, body
        line = (tmp_path / "nb.ipynb").read_text().splitlines()[int(place.group(1)) - 1]
        assert line[int(place.group(2)) - 1 :].startswith("import no_such_module")  # the line that raised


def test_the_master_imports_no_kernel_runtime_before_workers_fork():
    """gunicorn imports the worker class and the hooks in the master, before fork and before gevent
    patches the worker: a module bound there to the standard ``subprocess.Popen`` (jupyter_client's
    launcher) cannot start kernels in a worker. Shown once as a worker that never got ready."""
    import subprocess
    import sys

    code = (
        "import sys, fngw.server.worker, fngw.server.gunicorn_hooks;"
        "print(sorted({m.split('.')[0] for m in sys.modules if m.startswith(('jupyter_client', 'zmq'))}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_a_worker_start_does_not_compile_the_iri_grammar_and_iri_formats_are_still_checked():
    """jsonschema imports rfc3987_syntax when installed (jupyter_server's dependencies bring it),
    which compiles a Lark grammar at import: most of a worker's start, and of a reload's. fngw defers
    it until a schema checks an ``iri`` format (fngw.lazy_imports)."""
    import importlib.util
    import subprocess
    import sys

    if importlib.util.find_spec("rfc3987_syntax") is None:
        pytest.skip("rfc3987_syntax is not installed: nothing to defer")  # installed with the test extra
    code = (
        "import sys, fngw.server.gateway, fngw.deployment, jsonschema;"
        "print('lark' in sys.modules);"
        "v = jsonschema.Draft202012Validator({'format': 'iri'}, format_checker=jsonschema.FormatChecker());"
        "print(v.is_valid('https://example.org/caf\u00e9'), v.is_valid('no iri ::'), 'lark' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.split() == ["False", "True", "False", "True"], out.stdout + out.stderr
