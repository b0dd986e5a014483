"""Jobs shared by two gateway instances through a real redis-server: submit to one, poll, read and
cancel on the other; an instance killed while it holds a job; Redis going away and coming back."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest
from conftest import REPO
from gateway import Gateway, call_json, children_of
from test_jobs import AS_OPS, job_env, submit, wait_for, worker_pids

MANIFEST = """\
version: 1
auth:
  tokens:
    ops: {{env: FNGWTEST_OPS}}
  default: [ops]
jobs:
  store: {url}
  visibility: 3s
defaults:
  timeout: 30s
  pool: {{size: 1, max_queue: 10, queue_timeout: 30s}}
notebooks:
  work:
    path: {notebook}
    endpoints:
      "GET /slow/:name": {{pool: {{size: 1}}}}
      "GET /forever/:name": {{pool: {{size: 1}}}}
"""


@pytest.fixture(scope="module")
def instances(redis_server, tmp_path_factory):
    folder = tmp_path_factory.mktemp("redis-jobs")
    manifest = folder / "fngw.yaml"
    notebook = REPO / "tests" / "jobs" / "work.ipynb"
    manifest.write_text(MANIFEST.format(url=redis_server.url.replace("/0", "/3"), notebook=notebook))
    env = {**job_env(folder / "state", folder), "FNGW_MANIFEST": str(manifest)}
    started = [Gateway(env=env), Gateway(env=env)]
    try:
        for gateway in started:
            gateway.wait_ready("/_fngw/ready", timeout=120)
        yield started
    finally:
        for gateway in started:
            gateway.stop()


def test_any_instance_answers_for_any_job(instances):
    a, b = instances
    job = submit(a, "/slow/shared?seconds=0.2")
    done = wait_for(b, job)
    assert done["status"] == "succeeded"
    assert b.request("GET", done["result"], headers=AS_OPS)[2] == b"slept shared\n"
    # Cancelled on the other instance while it runs: its runner interrupts the kernel.
    running = submit(a, "/forever/shared")
    wait_for(b, running, statuses=("running",))
    status, _, cancelled = call_json(b, "DELETE", running["href"], headers=AS_OPS)
    assert status == 200 and cancelled["status"] == "cancelled"
    follow = submit(b, "/forever/after")
    wait_for(a, follow, statuses=("running",), timeout=20)  # a kernel of the pool took it
    call_json(a, "DELETE", follow["href"], headers=AS_OPS)
    listed = call_json(b, "GET", "/_fngw/jobs", headers=AS_OPS)[2]["jobs"]
    assert {job["id"], running["id"], follow["id"]} <= {j["id"] for j in listed}


def test_redis_unreachable_refuses_submissions_only_and_recovers(instances, redis_server):
    a, _ = instances
    redis_server.stop()
    try:
        status, headers, body = call_json(
            a, "GET", "/slow/down?seconds=0", headers={**AS_OPS, "Prefer": "respond-async"}
        )
        assert status == 503 and "job store is unreachable" in body["message"] and headers["retry-after"]
        assert a.request("GET", "/slow/sync?seconds=0", headers=AS_OPS)[:1] == (200,)  # synchronous calls go on
    finally:
        redis_server.start()
    deadline = time.monotonic() + 30
    while True:
        status, _, body = call_json(a, "GET", "/slow/up?seconds=0", headers={**AS_OPS, "Prefer": "respond-async"})
        if status == 202 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert status == 202, body
    assert wait_for(a, body)["status"] == "succeeded"


def test_a_killed_instances_running_job_is_reported_by_the_other(redis_server, tmp_path):
    manifest = tmp_path / "fngw.yaml"
    notebook = REPO / "tests" / "jobs" / "work.ipynb"
    manifest.write_text(MANIFEST.format(url=redis_server.url.replace("/0", "/4"), notebook=notebook))
    env = {**job_env(tmp_path / "state", tmp_path), "FNGW_MANIFEST": str(manifest)}
    with Gateway(env=env) as doomed, Gateway(env=env) as survivor:
        doomed.wait_ready("/_fngw/ready", timeout=120)
        survivor.wait_ready("/_fngw/ready", timeout=120)
        # A synchronous call keeps the survivor's /slow kernel, so the doomed instance takes the job.
        blocker = threading.Thread(target=survivor.request, args=("GET", "/slow/blocker?seconds=4", None, AS_OPS, 30))
        blocker.start()
        while not (tmp_path / "blocker").exists():
            time.sleep(0.05)
        job = submit(doomed, "/slow/doomed?seconds=60")
        wait_for(survivor, job, statuses=("running",))
        blocker.join()
        # The whole instance dies at once: master, worker and its kernels (all by PID).
        (worker,) = worker_pids(doomed)
        kernels = children_of(worker)
        for pid in (doomed.proc.pid, worker, *kernels):
            os.kill(pid, signal.SIGKILL)
        doomed.proc.wait(10)
        try:
            done = wait_for(survivor, job, timeout=60)
        except AssertionError:
            print("doomed:", doomed.output[-4000:], "\nsurvivor:", survivor.output[-6000:])
            raise
        assert done["status"] == "failed" and "worker running this job stopped" in done["error"]
