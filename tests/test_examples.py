"""The examples, each started the way Cloud Foundry starts it, and their deploy files.

Cloud Foundry runs an app's start command under `bash -c` with `PORT` set, probes its health check,
and on stop sends SIGTERM to that root process, then SIGKILL 10 s later. These tests do the same on
this machine: start command from the example's Procfile, traffic, SIGTERM, exit within 10 s and no
process of the gateway left.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest
import yaml
from gateway import REPO, Gateway, HttpPeer, children_of, free_port, gateway_env, running

EXAMPLES = REPO / "examples"
CF_KILL_AFTER = 10.0  # seconds between Cloud Foundry's SIGTERM and its SIGKILL


def start_command(example: str) -> str:
    procfile = (EXAMPLES / example / "Procfile").read_text().strip()
    assert procfile.startswith("web: ")
    return procfile[len("web: ") :]


def descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        for child in children_of(todo.pop()):
            found.append(child)
            todo.append(child)
    return found


class CloudFoundryApp(HttpPeer):
    """An example started as Cloud Foundry would: `bash -c <start command>` in its folder."""

    def __init__(self, example: str):
        port = free_port()
        bin_dir = str(Path(sys.executable).parent)
        env = gateway_env(PORT=str(port), PATH=f"{bin_dir}:{os.environ.get('PATH', '')}")
        env.update(yaml.safe_load((EXAMPLES / example / "manifest.yml").read_text())["applications"][0]["env"])
        self.log = tempfile.NamedTemporaryFile(prefix=f"fngw-test-{example}-", suffix=".log")  # noqa: SIM115
        proc = subprocess.Popen(
            ["bash", "-c", start_command(example)],
            cwd=EXAMPLES / example,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        super().__init__(port, proc)

    def describe(self) -> str:
        return Path(self.log.name).read_text(errors="replace")

    def stop_like_cloud_foundry(self) -> float:
        """SIGTERM to the root process; returns how long it took to exit (SIGKILL at 10 s)."""
        processes = [self.proc.pid, *descendants(self.proc.pid)]
        started = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(CF_KILL_AFTER)
        except subprocess.TimeoutExpired:
            for pid in processes:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
            self.proc.wait()
            log = self.describe()[-3000:]
            raise AssertionError(f"did not exit within {CF_KILL_AFTER}s of SIGTERM: {log}") from None
        took = time.monotonic() - started
        deadline = time.monotonic() + 5
        while any(running(pid) for pid in processes) and time.monotonic() < deadline:
            time.sleep(0.05)  # kernels are reaped by their worker as it exits; give the kernel a moment
        left = [pid for pid in processes if running(pid)]
        assert not left, f"left running after exit: {left}"
        return took


@pytest.fixture
def cf_app(request):
    app = CloudFoundryApp(request.param)
    try:
        app.wait_ready("/_fngw/health", timeout=60)
        app.wait_ready("/_fngw/ready", timeout=120)
        yield app
    finally:
        if app.proc.poll() is None:
            app.stop_like_cloud_foundry()


def call(app, method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json"} if body is not None else {}
    status, response_headers, raw = app.request(method, path, body=data, headers=headers, timeout=60)
    return status, response_headers.get("content-type"), raw


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", data[:40]
    return struct.unpack(">II", data[16:24])


@pytest.mark.parametrize("cf_app", ["hello"], indirect=True)
def test_hello_on_cloud_foundry(cf_app):
    assert call(cf_app, "GET", "/hello")[2] == b"hello, world\n"
    assert call(cf_app, "GET", "/hello/fngw?punctuation=!")[2] == b"hello, fngw!\n"
    status, content_type, raw = call(cf_app, "POST", "/echo", {"a": 1})
    assert (status, content_type, json.loads(raw)) == (200, "application/json", {"received": {"a": 1}, "keys": 1})
    assert cf_app.stop_like_cloud_foundry() < CF_KILL_AFTER


@pytest.mark.parametrize("cf_app", ["climate"], indirect=True)
def test_climate_data_service_on_cloud_foundry(cf_app):
    status, content_type, raw = call(cf_app, "GET", "/cities")
    cities = json.loads(raw)["cities"]
    assert (status, content_type, len(cities)) == (200, "application/json", 12)
    assert [c["city"] for c in json.loads(call(cf_app, "GET", "/cities?country=no")[2])["cities"]] == ["Oslo"]
    oslo = json.loads(call(cf_app, "GET", "/cities/oslo")[2])
    assert [m["month"] for m in oslo["months"]] == list(range(1, 13))
    july = json.loads(call(cf_app, "GET", "/cities/Oslo?month=7")[2])
    assert july["month"] == 7 and july["temp_c"] > json.loads(call(cf_app, "GET", "/cities/oslo?month=1")[2])["temp_c"]
    assert call(cf_app, "GET", "/cities/atlantis")[0] == 404
    # The example declares its inputs (fngw.yaml): bad ones are refused before the kernel, with
    # every error located, instead of the cell's own 400.
    status, content_type, raw = call(cf_app, "GET", "/cities/oslo?month=13")
    assert (status, json.loads(raw)["errors"][0]["pointer"]) == (422, "/month")

    status, content_type, raw = call(cf_app, "POST", "/predict", {"lat": 48.2, "month": 7})
    estimate = json.loads(raw)
    assert (status, content_type) == (200, "application/json")
    assert 10 < estimate["temp_c"] < 25 and estimate["model"]["rmse_c"] < 5
    north_winter = json.loads(call(cf_app, "POST", "/predict", {"lat": 48.2, "month": 1})[2])["temp_c"]
    south_winter = json.loads(call(cf_app, "POST", "/predict", {"lat": -48.2, "month": 7})[2])["temp_c"]
    assert north_winter < estimate["temp_c"] and abs(north_winter - south_winter) < 0.5  # seasons flip
    for bad, pointer in (
        ({"lat": 120, "month": 7}, "/lat"),
        ({"lat": 10, "month": 0}, "/month"),
        ({"lat": "north", "month": 1}, "/lat"),
        (["not", "a", "dict"], ""),
    ):
        status, content_type, raw = call(cf_app, "POST", "/predict", bad)
        assert (status, content_type) == (422, "application/json")
        assert [(e["in"], e["pointer"]) for e in json.loads(raw)["errors"]] == [("body", pointer)]
    assert cf_app.stop_like_cloud_foundry() < CF_KILL_AFTER


@pytest.mark.parametrize("cf_app", ["charts"], indirect=True)
def test_charts_on_cloud_foundry_with_a_request_in_flight_at_sigterm(cf_app):
    status, content_type, raw = call(cf_app, "GET", "/sparkline?values=3,5,2,8,6&width=200&height=50")
    assert (status, content_type, png_size(raw)) == (200, "image/png", (200, 50))
    chart = {
        "title": "Visits",
        "kind": "bar",
        "x": ["Mon", "Tue", "Wed"],
        "series": {"web": [3, 5, 2], "app": [1, 4, 6]},
    }
    status, content_type, raw = call(cf_app, "POST", "/chart", chart)
    assert (status, content_type, png_size(raw)) == (200, "image/png", (640, 360))
    status, content_type, raw = call(cf_app, "POST", "/chart", {"x": [1, 2], "series": {"a": [1]}})
    assert (status, content_type) == (400, "application/json")
    assert call(cf_app, "GET", "/sparkline?values=a,b")[0] == 422  # typed in fngw.yaml: refused before the kernel

    # A request that is being drawn when SIGTERM arrives still gets its chart.
    big = {"x": list(range(1000)), "series": {f"s{i}": [float(v % 97) for v in range(1000)] for i in range(8)}}
    answers = []
    in_flight = threading.Thread(target=lambda: answers.append(call(cf_app, "POST", "/chart", big)))
    in_flight.start()
    deadline = time.monotonic() + 10
    while "POST" not in busy_requests(cf_app):  # until the request is on a kernel
        assert time.monotonic() < deadline, "the request never reached a kernel"
    took = cf_app.stop_like_cloud_foundry()
    in_flight.join()
    assert took < CF_KILL_AFTER
    assert answers and answers[0][:2] == (200, "image/png"), answers


def busy_requests(app) -> str:
    """'POST' once a kernel of the pool is busy (from the metrics; this example's metrics are public)."""
    _, _, raw = app.request("GET", "/_fngw/metrics", timeout=5)
    for line in raw.decode().splitlines():
        if line.startswith("fngw_pool_kernels{") and 'state="busy"' in line and float(line.rsplit(" ", 1)[1]) >= 1:
            return "POST"
    return ""


def test_cloud_foundry_files_agree_with_the_gateway():
    for example in ("hello", "climate", "charts"):
        folder = EXAMPLES / example
        app = yaml.safe_load((folder / "manifest.yml").read_text())["applications"][0]
        assert app["command"] == start_command(example)
        assert app["command"].startswith("exec ")  # else bash keeps the SIGTERM
        assert app["health-check-type"] == "http" and app["health-check-http-endpoint"] == "/_fngw/health"
        assert app["readiness-health-check-http-endpoint"] == "/_fngw/ready"
        assert (folder / app["env"]["FNGW_MANIFEST"]).is_file()
        requirements = (folder / "requirements.txt").read_text().split()
        assert "fngw>=0.1" in requirements
        assert (folder / "runtime.txt").read_text().startswith("python-3.")
        check = subprocess.run(
            [sys.executable, "-m", "fngw", "validate", str(folder / "fngw.yaml")], capture_output=True, text=True
        )
        assert check.returncode == 0, check.stdout


def test_kubernetes_files_point_at_the_real_endpoints_and_ports():
    folder = EXAMPLES / "climate" / "k8s"
    deployment = yaml.safe_load((folder / "deployment.yaml").read_text())
    service = yaml.safe_load((folder / "service.yaml").read_text())
    hpa = yaml.safe_load((folder / "hpa.yaml").read_text())
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    env = {e["name"]: e["value"] for e in container["env"]}
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert int(env["PORT"]) == ports["http"]
    for probe in ("startupProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/_fngw/ready", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/_fngw/health", "port": "http"}
    pause = int(container["lifecycle"]["preStop"]["exec"]["command"][-1])
    from fngw.server import gunicorn_conf

    assert pod["terminationGracePeriodSeconds"] >= pause + gunicorn_conf.graceful_timeout + 2
    # Memory: master + worker + the manifest's pool of kernels, as measured (docs/deploying.md).
    manifest = yaml.safe_load((REPO / "examples" / "climate" / "fngw.yaml").read_text())
    kernels = manifest["defaults"]["pool"]["size"]
    assert mebibytes(container["resources"]["requests"]["memory"]) >= 32 + 80 + kernels * 52
    assert mebibytes(container["resources"]["limits"]["memory"]) >= mebibytes(
        container["resources"]["requests"]["memory"]
    )
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    assert service["spec"]["ports"][0]["targetPort"] in ("http", ports["http"])
    assert hpa["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    dockerfile = (REPO / "examples" / "climate" / "Dockerfile").read_text()
    assert '"python:fngw.server.gunicorn_conf"' in dockerfile and f"PORT={ports['http']}" in dockerfile


def mebibytes(quantity: str) -> int:
    units = {"Mi": 1, "Gi": 1024}
    return int(quantity[:-2]) * units[quantity[-2:]]


def test_readme_tour_of_the_hello_example():
    with Gateway() as gw:
        gw.wait_ready("/_fngw/ready", timeout=90)
        assert gw.request("GET", "/hello")[2] == b"hello, world\n"
        assert gw.request("GET", "/hello/fngw?punctuation=!")[2] == b"hello, fngw!\n"
        status, _, body = gw.request("GET", "/_fngw/openapi.json")
        assert status == 200 and "/hello/{name}" in json.loads(body)["paths"]


def test_readme_five_minute_tour_works_as_written(tmp_path):
    import re

    readme = (REPO / "README.md").read_text()
    tour = readme.split("## Five minutes with fngw", 1)[1].split("\n## ", 1)[0]
    cells = re.findall(r"```python\n(.*?)```", tour, re.S)
    manifest, typed = re.findall(r"```yaml\n(.*?)```", tour, re.S)
    from conftest import write_notebook

    write_notebook(tmp_path / "scores.ipynb", [c.rstrip("\n") for c in cells])
    (tmp_path / "fngw.yaml").write_text(manifest)
    check = subprocess.run([sys.executable, "-m", "fngw", "validate", str(tmp_path / "fngw.yaml")], capture_output=True)
    assert check.returncode == 0, check.stdout
    with Gateway(env=gateway_env(FNGW_MANIFEST=str(tmp_path / "fngw.yaml"))) as gw:
        gw.wait_ready("/_fngw/ready", timeout=90)
        status, headers, body = gw.request(
            "POST", "/score", body=b'{"speed": 10, "accuracy": 5}', headers={"Content-Type": "application/json"}
        )
        assert (status, headers["content-type"], json.loads(body)) == (200, "application/json", {"score": 8.0})
    # Step 6: the typed manifest is valid and its example passes on real kernels.
    (tmp_path / "typed.yaml").write_text(typed)
    typed_test = subprocess.run(
        [sys.executable, "-m", "fngw", "test", str(tmp_path / "typed.yaml")], capture_output=True, text=True
    )
    assert typed_test.returncode == 0 and "1 passed, 0 failed" in typed_test.stdout, typed_test.stdout
