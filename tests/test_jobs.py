"""Asynchronous calls through a real gunicorn and real kernels, with the default SQLite store: 202
and the whole lifecycle, results identical to the synchronous response (text, JSON, PNG), cancel of
queued and running jobs, idempotency keys, signed callbacks, auth isolation, expiry, limits, and
nothing lost across SIGTERM, a restart and a worker's SIGKILL."""

from __future__ import annotations

import hashlib
import hmac
import http.server
import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest
from conftest import REPO
from gateway import Gateway, call_json, children_of, gateway_env

SERVICE = REPO / "tests" / "jobs" / "fngw.yaml"
OPS, PARTNER, ADMIN, CALLBACK_SECRET = "ops-secret", "partner-secret", "admin-secret", "callback-secret"
AS_OPS = {"Authorization": f"Bearer {OPS}"}
ASYNC = {**AS_OPS, "Prefer": "respond-async"}


def job_env(state: Path, markers: Path, **extra: str) -> dict[str, str]:
    return gateway_env(
        FNGW_MANIFEST=str(SERVICE),
        FNGW_STATE_DIR=str(state),
        FNGWTEST_MARKERS=str(markers),
        FNGWTEST_OPS=OPS,
        FNGWTEST_PARTNER=PARTNER,
        FNGWTEST_ADMIN=ADMIN,
        FNGWTEST_CALLBACK_SECRET=CALLBACK_SECRET,
        **extra,
    )


@pytest.fixture(scope="module")
def markers(tmp_path_factory):
    return tmp_path_factory.mktemp("markers")


@pytest.fixture(scope="module")
def gw(tmp_path_factory, markers):
    gateway = Gateway(env=job_env(tmp_path_factory.mktemp("state"), markers))
    try:
        gateway.wait_ready("/_fngw/ready", timeout=120)
        yield gateway
    finally:
        gateway.stop()


def submit(gw, path: str, headers: dict | None = None, body=None, method: str = "GET") -> dict:
    status, response_headers, job = call_json(gw, method, path, body=body, headers={**ASYNC, **(headers or {})})
    assert status == 202, (status, job)
    assert response_headers["location"] == job["href"] == f"/_fngw/jobs/{job['id']}"
    assert response_headers["preference-applied"] == "respond-async" and response_headers["retry-after"]
    return job


def wait_for(gw, job: dict, statuses=("succeeded", "failed", "cancelled", "expired"), headers=None, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, _, found = call_json(gw, "GET", job["href"], headers=headers or AS_OPS)
        assert status == 200, (status, found)
        if found["status"] in statuses:
            return found
        time.sleep(0.1)
    raise AssertionError(f"job still {found['status']}")


def test_a_call_is_accepted_then_its_result_is_the_synchronous_response(gw):
    for method, path, body, accept in [
        ("GET", "/hello/Zo%C3%AB%2Fx", None, None),
        ("POST", "/score", {"x": [1, 2]}, None),
        ("GET", "/chart", None, "image/png"),
        ("GET", "/fail", None, None),
    ]:
        headers = {"Accept": accept} if accept else {}
        data = json.dumps(body).encode() if body is not None else None
        if data:
            headers["Content-Type"] = "application/json"
        sync = gw.request(method, path, body=data, headers={**AS_OPS, **headers})
        job = submit(gw, path, headers, data, method)
        assert (
            job["status"] == "queued"
            and job["endpoint"] == f"{method} {path if not path.startswith('/hello') else '/hello/:name'}"
        )
        done = wait_for(gw, job)
        assert done["status"] == ("failed" if path == "/fail" else "succeeded"), done
        assert done["created"] <= done["started"] <= done["finished"] and done["result"] == job["href"] + "/result"
        result = gw.request("GET", done["result"], headers=AS_OPS)
        assert result[0] == sync[0] and result[2] == sync[2], (path, result, sync)
        for header in ("content-type", "x-model"):
            assert result[1].get(header) == sync[1].get(header)
    assert "no model" in done["error"]


def test_the_endpoint_is_named_and_validation_happens_before_the_202(gw):
    job = submit(gw, "/hello/x")
    assert job["endpoint"] == "GET /hello/:name"
    assert call_json(gw, "GET", "/hello/x", headers={"Prefer": "respond-async"})[0] == 401  # no token
    bad = gw.request("POST", "/score", body=b"{nope", headers={**ASYNC, "Content-Type": "application/json"})
    assert bad[0] == 400 and b"JSON" in bad[2]
    assert gw.request("GET", "/missing", headers=ASYNC)[0] == 404
    status, _, body = call_json(gw, "GET", "/hello/x", headers={**ASYNC, "X-Callback-Url": "http://10.1.1.1/x"})
    assert status == 422 and "allow_hosts" in body["message"]


def test_an_async_endpoint_always_answers_202_and_the_cell_sees_the_synchronous_headers(gw):
    status, headers, job = call_json(gw, "GET", "/report", headers=AS_OPS)
    assert status == 202 and headers["location"] == job["href"]
    assert gw.request("GET", wait_for(gw, job)["result"], headers=AS_OPS)[2] == b"report ready\n"
    job = submit(gw, "/headers?token=" + OPS, {"Idempotency-Key": "h1", "X-Trace": "1"})
    seen = json.loads(gw.request("GET", wait_for(gw, job)["result"], headers=AS_OPS)[2])
    assert "X-Trace" in seen and not {"Authorization", "Prefer", "Idempotency-Key"} & set(seen)


def test_a_queued_job_cancelled_never_runs_and_a_running_one_is_interrupted(gw, markers):
    running = submit(gw, "/forever/c-running")
    queued = submit(gw, "/forever/c-queued")
    wait_for(gw, running, statuses=("running",))
    status, _, cancelled = call_json(gw, "DELETE", queued["href"], headers=AS_OPS)
    assert status == 200 and cancelled["status"] == "cancelled"
    status, _, cancelled = call_json(gw, "DELETE", running["href"], headers=AS_OPS)
    assert status == 200 and cancelled["status"] == "cancelled"
    # The kernel is interrupted and goes back to its pool: the next call on the pool runs.
    follow = submit(gw, "/forever/c-after")
    wait_for(gw, follow, statuses=("running",), timeout=15)
    call_json(gw, "DELETE", follow["href"], headers=AS_OPS)
    assert (markers / "c-running").exists() and not (markers / "c-queued").exists()
    status, _, body = call_json(gw, "DELETE", running["href"], headers=AS_OPS)
    assert status == 409 and body["job_status"] == "cancelled"
    status, _, body = call_json(gw, "GET", running["href"] + "/result", headers=AS_OPS)
    assert status == 409 and body["job_status"] == "cancelled"


def test_the_result_is_409_until_the_job_has_finished(gw):
    job = submit(gw, "/slow/r409?seconds=1.5")
    status, headers, body = call_json(gw, "GET", job["href"] + "/result", headers=AS_OPS)
    assert status == 409 and body["job_status"] in ("queued", "running") and headers["retry-after"]
    wait_for(gw, job)
    assert gw.request("GET", job["href"] + "/result", headers=AS_OPS)[2] == b"slept r409\n"


def test_idempotency_keys(gw):
    first = submit(
        gw, "/score", {"Idempotency-Key": "order-1", "Content-Type": "application/json"}, b'{"a": 1}', "POST"
    )
    again = submit(
        gw, "/score", {"Idempotency-Key": "order-1", "Content-Type": "application/json"}, b'{"a": 1}', "POST"
    )
    assert again["id"] == first["id"]
    status, _, body = call_json(
        gw, "POST", "/score", b'{"a": 2}', {**ASYNC, "Idempotency-Key": "order-1", "Content-Type": "application/json"}
    )
    assert status == 422 and "Idempotency-Key" in body["message"]
    other = submit(gw, "/score", {"Idempotency-Key": "order-1", "Content-Type": "application/json",
                                  "Authorization": f"Bearer {PARTNER}"}, b'{"a": 1}', "POST")  # fmt: skip
    assert other["id"] != first["id"]  # keys belong to their caller


def test_jobs_are_visible_to_their_owner_and_admins_only(gw):
    job = submit(gw, "/hello/mine")
    wait_for(gw, job)
    partner = {"Authorization": f"Bearer {PARTNER}"}
    admin = {"Authorization": f"Bearer {ADMIN}"}
    assert call_json(gw, "GET", job["href"], headers=partner)[0] == 404
    assert call_json(gw, "GET", job["href"] + "/result", headers=partner)[0] == 404
    assert call_json(gw, "DELETE", job["href"], headers=partner)[0] == 404
    assert call_json(gw, "GET", job["href"])[0] == 404  # no token: as if there were no such job
    assert call_json(gw, "GET", job["href"], headers={"Authorization": "Bearer wrong"})[0] == 401
    assert call_json(gw, "GET", job["href"], headers=admin)[0] == 200
    mine = call_json(gw, "GET", "/_fngw/jobs?status=succeeded", headers=AS_OPS)[2]["jobs"]
    assert job["id"] in [j["id"] for j in mine] and {j["status"] for j in mine} == {"succeeded"}
    assert job["id"] not in [j["id"] for j in call_json(gw, "GET", "/_fngw/jobs", headers=partner)[2]["jobs"]]
    assert job["id"] in [j["id"] for j in call_json(gw, "GET", "/_fngw/jobs", headers=admin)[2]["jobs"]]
    assert call_json(gw, "GET", "/_fngw/jobs")[0] == 401
    assert call_json(gw, "GET", "/_fngw/jobs?status=weird", headers=AS_OPS)[0] == 400


class Receiver(http.server.BaseHTTPRequestHandler):
    received: list[tuple[dict, bytes]] = []
    failures_left = 1  # the first attempt fails: the sender must retry

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if Receiver.failures_left > 0:
            Receiver.failures_left -= 1
            self.send_response(503)
        else:
            Receiver.received.append((dict(self.headers), body))
            self.send_response(204)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


def test_a_callback_is_signed_and_retried(gw):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/hook"
        job = submit(gw, "/hello/cb", {"X-Callback-Url": url})
        deadline = time.monotonic() + 20
        while not Receiver.received and time.monotonic() < deadline:
            time.sleep(0.1)
        headers, body = Receiver.received[0]
        expected = "sha256=" + hmac.new(CALLBACK_SECRET.encode(), body, hashlib.sha256).hexdigest()
        assert hmac.compare_digest(headers["X-Fngw-Signature"], expected)
        sent = json.loads(body)
        assert sent["id"] == job["id"] and sent["status"] == "succeeded" and sent["response"]["status"] == 200
        assert sent["result"] == job["href"] + "/result"
    finally:
        server.shutdown()
        server.server_close()


def test_limits_a_result_too_large_fails_and_metrics_count_jobs(gw):
    job = submit(gw, "/big")
    done = wait_for(gw, job)
    assert done["status"] == "failed" and "max_result" in done["error"] and "result" not in done
    metrics = gw.request("GET", "/_fngw/metrics", headers=AS_OPS)[2].decode()
    assert 'fngw_jobs_total{endpoint="GET /big",status="failed"}' in metrics
    assert "fngw_jobs_queued" in metrics and "fngw_jobs_oldest_queued_age_seconds" in metrics


def test_finished_jobs_expire_after_the_ttl(gw):
    job = submit(gw, "/hello/old")
    wait_for(gw, job)
    expired = wait_for(gw, job, statuses=("expired",), timeout=20)  # ttl 6s, swept every 3s
    assert "result" not in expired
    assert call_json(gw, "GET", job["href"] + "/result", headers=AS_OPS)[0] == 409


def worker_pids(gateway: Gateway) -> list[int]:
    return [pid for pid in children_of(gateway.proc.pid) if "gunicorn" in Path(f"/proc/{pid}/cmdline").read_text()]


def test_nothing_accepted_is_lost_across_sigterm_a_restart_and_a_killed_worker(tmp_path, markers):
    state = tmp_path / "state"
    # The module's manifest with a long ttl: this test's jobs must not expire while it restarts.
    manifest = tmp_path / "fngw.yaml"
    notebook = str(SERVICE.parent / "work.ipynb")
    manifest.write_text(SERVICE.read_text().replace("ttl: 6s", "ttl: 1h").replace("work.ipynb", notebook))
    env = {**job_env(state, markers), "FNGW_MANIFEST": str(manifest)}
    with Gateway(env=env) as first:
        first.wait_ready("/_fngw/ready", timeout=120)
        running = submit(first, "/slow/t-running?seconds=30")
        retried = submit(first, "/runs/t-retried?seconds=30")
        short = submit(first, "/short/slow/t-short?seconds=2")
        queued = [submit(first, f"/slow/t-queued-{i}?seconds=0") for i in range(3)]
        wait_for(first, running, statuses=("running",))
        wait_for(first, retried, statuses=("running",))
        wait_for(first, short, statuses=("running",))
        first.proc.send_signal(signal.SIGTERM)
        first.wait_exit(60)
    with Gateway(env=env) as second:
        second.wait_ready("/_fngw/ready", timeout=120)
        for job in queued:
            assert wait_for(second, job)["status"] == "succeeded"
        # A job that finishes within the graceful timeout finishes, though no connection was open.
        assert wait_for(second, short)["status"] == "succeeded"
        lost = wait_for(second, running)
        assert lost["status"] == "failed" and "stopped" in lost["error"]
        # The idempotent job was running too: it runs again on the new gateway.
        assert wait_for(second, retried, statuses=("running",))["status"] == "running"
        call_json(second, "DELETE", retried["href"], headers=AS_OPS)
        # A worker killed while it runs a job: the job fails, saying so, once the new worker looks.
        killed = submit(second, "/slow/t-killed?seconds=30")
        wait_for(second, killed, statuses=("running",))
        (worker,) = worker_pids(second)
        os.kill(worker, signal.SIGKILL)
        done = wait_for(second, killed, timeout=60)
        assert done["status"] == "failed" and "worker running this job stopped" in done["error"]
