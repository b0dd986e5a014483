"""The kernel API's kernels outlive the worker that started them (issue 17): a killed worker and a
SIGHUP reload leave them running with their state, and another worker takes them over; only
stopping the instance stops them. One instance, two workers, real kernels."""

from __future__ import annotations

import contextlib
import os
import signal
import tempfile
import time
from pathlib import Path

from conftest import REPO
from gateway import Gateway, call_json, children_of, gateway_env, running
from messages import run_code, ws_url
from websockets.sync.client import connect

HERE = REPO / "tests" / "kernel_api"


def kernel_process(gateway: Gateway, workers_before: list[int]) -> tuple[int, int]:
    """(the kernel's pid, the worker that started it): the one kernel process under the workers."""
    found = [(k, w) for w in workers_before for k in children_of(w)]
    assert len(found) == 1, found
    return found[0]


def wait_until(condition, seconds: float = 60.0, what: str = "") -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.2)


def test_kernels_survive_a_killed_worker_and_a_reload_and_stop_with_the_instance():
    gateway = Gateway("--workers", "2", env=gateway_env(FNGW_MANIFEST=str(HERE / "workers.yaml")))
    try:
        gateway.wait_ready()
        status, _, model = call_json(gateway, "POST", "/api/kernels", {})
        assert status == 201, model
        kernel_id = model["id"]
        with connect(ws_url(gateway, kernel_id)) as ws:
            assert run_code(ws, "kept = 7") == ("", "ok")
        workers = children_of(gateway.proc.pid)
        pid, owner = kernel_process(gateway, workers)

        os.kill(owner, signal.SIGKILL)  # the worker that started it
        wait_until(lambda: owner not in children_of(gateway.proc.pid) and len(children_of(gateway.proc.pid)) == 2)
        assert running(pid)
        for _ in range(4):  # whichever worker answers
            assert call_json(gateway, "GET", f"/api/kernels/{kernel_id}")[0] == 200
            with connect(ws_url(gateway, kernel_id)) as ws:
                assert run_code(ws, "print(kept)") == ("7\n", "ok")

        before_reload = children_of(gateway.proc.pid)
        gateway.proc.send_signal(signal.SIGHUP)
        wait_until(
            lambda: (
                not set(before_reload) & set(children_of(gateway.proc.pid)) and len(children_of(gateway.proc.pid)) == 2
            ),
            what="the reload did not replace the workers",
        )
        assert running(pid)
        for _ in range(4):
            with connect(ws_url(gateway, kernel_id)) as ws:
                assert run_code(ws, "print(kept + 1)") == ("8\n", "ok")
        assert kernel_id in [k["id"] for k in call_json(gateway, "GET", "/api/kernels")[2]]
    finally:
        gateway.stop()
    wait_until(lambda: not running(pid), 10, "the kernel outlived its instance")


def test_a_killed_workers_prewarmed_kernels_go_with_it_and_its_started_ones_stay(tmp_path):
    manifest = tmp_path / "fngw.yaml"
    manifest.write_text("version: 1\nkernel_api:\n  list_kernels: true\n  prewarm: 1\n")
    gateway = Gateway(env=gateway_env(FNGW_MANIFEST=str(manifest)))
    folders = Path(tempfile.gettempdir()) / f"fngw-{gateway.proc.pid}" / "kernel-api-kernels"

    def kernels() -> dict[bool, list[int]]:
        """The kernels' pids (their process groups), by whether they are kept (started for a client)."""
        found: dict[bool, list[int]] = {True: [], False: []}
        for folder in folders.glob("k-*"):
            with contextlib.suppress(OSError, ValueError):
                found[(folder / "kept").exists()].append(int((folder / "pgid").read_text()))
        return found

    try:
        gateway.wait_ready()
        [worker] = children_of(gateway.proc.pid)
        status, _, model = call_json(gateway, "POST", "/api/kernels", {})
        assert status == 201, model
        # A started kernel (kept) and a prewarmed one waiting for the next client.
        wait_until(lambda: len(kernels()[True]) == 1 and len(kernels()[False]) == 1, what="no prewarmed kernel")
        [started], [spare] = kernels()[True], kernels()[False]
        os.kill(worker, signal.SIGKILL)
        wait_until(lambda: not running(spare), 20, "the killed worker's prewarmed kernel was left running")
        assert running(started)
        wait_until(lambda: call_json(gateway, "GET", f"/api/kernels/{model['id']}")[0] == 200)
    finally:
        gateway.stop()
    wait_until(lambda: not running(started), 10, "the kernel outlived its instance")
