"""What operators see: metrics across workers, a JSON log line per request with its id, readiness."""

from __future__ import annotations

import http.client
import json
import re
import threading
import time

import falcon.testing
import pytest
from conftest import write_notebook
from gateway import Gateway, gateway_env

from fngw.manifest import load_manifest
from fngw.server.app import create_app

NOTEBOOK = [
    "import json\nREQUEST = json.dumps({})",
    "# GET /hello/:name\nreq = json.loads(REQUEST)\nprint('hello ' + req['path']['name'])",
    "# POST /fail\nraise ValueError('nope')",
    "# GET /slow\nimport time\ntime.sleep(3)\nprint('late')",
]


@pytest.fixture(scope="module")
def gw(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ops")
    write_notebook(folder / "ops.ipynb", NOTEBOOK)
    (folder / "fngw.yaml").write_text(
        "version: 1\n"
        "auth:\n  tokens: {ops: {env: FNGWTEST_OPS_TOKEN}}\n  default: [ops]\n"
        "defaults:\n  timeout: 1s\n  pool: {size: 1, max_queue: 0, queue_timeout: 1s}\n"
        "notebooks:\n  ops: {path: ops.ipynb, auth: public}\n"
    )
    env = gateway_env(FNGW_MANIFEST=str(folder / "fngw.yaml"), FNGWTEST_OPS_TOKEN="s3cret-token-value")
    gateway = Gateway("--workers", "2", env=env)
    try:
        gateway.wait_ready("/_fngw/ready", timeout=90)
        # /ready answers for the worker it lands on; the metrics see both workers' kernels.
        wait_all_idle(gateway)
        yield gateway
    finally:
        gateway.stop()


def wait_all_idle(gw) -> None:
    """Until both workers' kernels are idle: /ready answers for the worker it lands on, the metrics
    for both; a kernel interrupted by an earlier test may still be recovering."""
    deadline = time.monotonic() + 90
    while sample(scrape(gw), "fngw_pool_kernels", pool="ops", state="idle") < 2:
        assert time.monotonic() < deadline, "both workers' kernels should be idle"


def scrape(gw) -> str:
    status, headers, body = gw.request("GET", "/_fngw/metrics", headers={"Authorization": "Bearer s3cret-token-value"})
    assert status == 200, (body, gw.output[-4000:])
    assert headers["content-type"].startswith("text/plain")
    return body.decode()


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample in the Prometheus text format (0 when absent)."""
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            found = dict(re.findall(r'(\w+)="([^"]*)"', line.split(" ")[0]))
            if all(found.get(k) == v for k, v in labels.items()):
                return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_metrics_need_the_default_token(gw):
    status, headers, _ = gw.request("GET", "/_fngw/metrics")
    assert status == 401 and "bearer" in headers["www-authenticate"].lower()


def test_metrics_count_every_worker_s_requests(gw):
    before = scrape(gw)
    route = "/hello/{name}"
    start = sample(before, "fngw_requests_total", route=route, method="GET", status="200")
    for i in range(12):  # new connections: gunicorn spreads them over both workers
        assert gw.request("GET", f"/hello/n{i}")[0] == 200
    assert gw.request("POST", "/fail")[0] == 500
    text = scrape(gw)
    assert sample(text, "fngw_requests_total", route=route, method="GET", status="200") == start + 12
    assert sample(text, "fngw_requests_total", route="/fail", method="POST", status="500") >= 1
    assert sample(text, "fngw_request_duration_seconds_count", route=route, method="GET") >= 12
    assert sample(text, "fngw_gateway_overhead_seconds_count", route=route, method="GET") >= 12
    assert sample(text, "fngw_pool_wait_seconds_count", pool="ops") >= 13
    # Pool gauges are per worker, summed: 2 workers with a pool of 1 each.
    assert sample(text, "fngw_pool_size", pool="ops") == 2
    assert sample(text, "fngw_kernel_starts_total", pool="ops") >= 2


def test_rejections_and_timeouts_are_counted(gw):
    import threading

    results = []

    def slow():
        results.append(gw.request("GET", "/slow", timeout=30)[0])

    # max_queue 0 and 1 s timeout: a burst gets some 503s, and every /slow runs past its timeout (504).
    threads = [threading.Thread(target=slow) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert 504 in results and 503 in results, results
    text = scrape(gw)
    assert sample(text, "fngw_requests_total", route="/slow", method="GET", status="504") == results.count(504)
    rejected = sum(
        sample(text, "fngw_pool_rejections_total", pool="ops", reason=r) for r in ("queue_full", "queue_timeout")
    )
    assert rejected >= results.count(503)
    deadline = time.monotonic() + 30
    while sample(text, "fngw_pool_timeouts_total", pool="ops") < results.count(504):
        assert time.monotonic() < deadline, "timeouts were not counted"
        text = scrape(gw)  # each worker samples its pool counters every second


def test_every_request_is_one_json_log_line_with_its_id(gw):
    wait_all_idle(gw)
    status, headers, _ = gw.request("GET", "/hello/log?token=should-not-be-logged", headers={"X-Request-Id": "req-42"})
    assert status == 200 and headers["x-request-id"] == "req-42"
    status, headers, _ = gw.request("GET", "/hello/other", headers={"X-Request-Id": "bad id\twith tab"})
    generated = headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", generated)
    gw.request("GET", "/_fngw/metrics", headers={"Authorization": "Bearer s3cret-token-value"})
    deadline = time.monotonic() + 10
    while True:
        lines = [json.loads(line) for line in gw.output.splitlines() if line.startswith("{")]
        mine = [entry for entry in lines if entry.get("request_id") == "req-42"]
        if mine and any(e.get("request_id") == generated for e in lines):
            break
        assert time.monotonic() < deadline, gw.output[-2000:]
    entry = mine[0]
    assert entry["event"] == "request" and entry["level"] == "info"
    assert (entry["method"], entry["path"], entry["route"], entry["status"]) == (
        "GET",
        "/hello/log",
        "/hello/{name}",
        200,
    )
    assert entry["pool"] == "ops" and entry["kernel_id"] and entry["bytes"] == len("hello log\n")
    assert entry["duration_ms"] >= entry["pool_wait_ms"] >= 0
    assert "should-not-be-logged" not in gw.output
    assert "s3cret-token-value" not in gw.output
    assert any(e.get("logger") == "fngw.kernels" and "started" in e["message"] for e in lines)


def test_readiness_turns_503_when_shutdown_begins(tmp_path):
    app = create_app(load_manifest(_minimal(tmp_path)).manifest)
    client = falcon.testing.TestClient(app)
    assert client.simulate_get("/_fngw/ready").status_code == 200
    app.begin_shutdown()
    result = client.simulate_get("/_fngw/ready")
    assert result.status_code == 503 and result.json["status"] == "draining"
    assert client.simulate_get("/_fngw/health").status_code == 200  # liveness is not readiness


def _minimal(folder):
    path = folder / "fngw.yaml"
    path.write_text("version: 1\n")
    return path


class KeepAliveCaller(threading.Thread):
    """Calls ``path`` in a loop on one persistent connection, opening another only when the server
    answers ``Connection: close``; what fails is kept in ``failures``."""

    def __init__(self, port: int, path: str):
        super().__init__(daemon=True)
        self.port, self.path = port, path
        self.answers: list[tuple[int, bytes]] = []
        self.failures: list[str] = []
        self.reconnects = 0
        self.stopping = threading.Event()
        self.start()

    def run(self) -> None:
        conn = None
        while not self.stopping.is_set():
            if conn is None:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            try:
                conn.request("GET", self.path)
                response = conn.getresponse()
                self.answers.append((response.status, response.read()))
                if not response.will_close:
                    continue
                self.reconnects += 1
            except (OSError, http.client.HTTPException) as exc:
                self.failures.append(repr(exc))
            conn.close()
            conn = None

    def finish(self) -> list[tuple[int, bytes]]:
        self.stopping.set()
        self.join(30)
        return self.answers


def test_sighup_rereads_notebooks_and_an_invalid_manifest_keeps_the_old_workers(tmp_path):
    import signal

    from gateway import children_of

    notebook = tmp_path / "nb.ipynb"
    # Longer than gunicorn's graceful_timeout (8 s), which is for a stop: a reload lets it finish.
    slow = "# GET /slow\nimport time\ntime.sleep(14)\nprint('slow', VERSION)"
    write_notebook(notebook, ["VERSION = 1", "# GET /version\nprint('one')", slow])
    manifest = tmp_path / "fngw.yaml"
    manifest.write_text("version: 1\ndefaults: {pool: {size: 2}}\nnotebooks:\n  nb: {path: nb.ipynb}\n")
    with Gateway(env=gateway_env(FNGW_MANIFEST=str(manifest))) as gw:
        gw.wait_ready("/_fngw/ready", timeout=90)
        assert gw.request("GET", "/version")[2] == b"one\n"
        in_flight: list[tuple[int, dict, bytes]] = []
        slow_call = threading.Thread(target=lambda: in_flight.append(gw.request("GET", "/slow", timeout=60)))
        slow_call.start()
        callers = [KeepAliveCaller(gw.port, "/version") for _ in range(2)]
        write_notebook(notebook, ["VERSION = 2", "# GET /version\nprint('two')", slow])
        time.sleep(1)  # the slow request has reached the old worker's kernel
        gw.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 60
        while gw.request("GET", "/version")[2] != b"two\n":  # old workers answer until new ones are up
            assert time.monotonic() < deadline, gw.output[-2000:]

        # While the old worker still drains the slow request, the master handles signals at once
        # (gunicorn's reload would sit up to graceful_timeout waiting for old workers): an invalid
        # manifest's reload is refused now, not seconds later.
        manifest.write_text("version: 1\nnotebooks:\n  nb: {path: nb.ipynb, colour: red}\n")
        gw.proc.send_signal(signal.SIGHUP)
        refused_by = time.monotonic() + 4
        while "reload refused" not in gw.output:
            assert time.monotonic() < refused_by, gw.output[-2000:]
            time.sleep(0.05)
        assert not in_flight  # still running on the old worker
        assert "colour" in gw.output  # the validation error, as `fngw validate` words it

        while len(workers := children_of(gw.proc.pid)) != 1:  # the old worker finishes and exits
            assert time.monotonic() < deadline, workers
        # Clients on keep-alive connections lost no request: the retiring worker told each to
        # reconnect (Connection: close) rather than closing under a request.
        for caller in callers:
            answers = caller.finish()
            assert not caller.failures, (caller.failures, gw.output[-3000:])
            assert caller.reconnects >= 1 and answers[-1] == (200, b"two\n"), answers[-3:]
        slow_call.join(30)
        assert [(status, body) for status, _, body in in_flight] == [(200, b"slow 1\n")], gw.output[-3000:]
        assert gw.request("GET", "/version")[:1] == (200,) and gw.request("GET", "/version")[2] == b"two\n"
        assert children_of(gw.proc.pid) == workers
        assert gw.proc.poll() is None
