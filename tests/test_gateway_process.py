"""The gateway as users start it: `gunicorn fngw.wsgi` from the repository root."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile

import pytest
from conftest import write_notebook
from gateway import REPO, Gateway, children_of, free_port, gateway_env


def test_default_manifest_serves_health_and_stops_by_pid():
    gw = Gateway()
    try:
        gw.wait_ready()
        status, body = gw.get_json("/_fngw/health")
        assert (status, body) == (200, {"status": "ok"})
        workers = children_of(gw.proc.pid)
        assert workers, "gunicorn should have forked a worker"
        status, missing = gw.get_json("/no/such/route")
        assert status == 404 and missing == {"reason": "Not Found", "message": "no route matches /no/such/route"}
    finally:
        code = gw.stop()
    assert code == 0
    assert "Using worker: fngw.server.worker.GeventWorker" in gw.stderr
    for pid in workers:
        assert not os.path.exists(f"/proc/{pid}"), f"worker {pid} outlived its master"


def test_port_from_the_environment_binds_all_interfaces():
    port = free_port()
    with Gateway(env=gateway_env(PORT=str(port)), port=port) as gw:
        gw.wait_ready()
    assert f"Listening at: http://0.0.0.0:{port}" in gw.stderr


def test_invalid_manifest_exits_nonzero_with_the_validate_messages(tmp_path):
    write_notebook(tmp_path / "nb.ipynb", ["# GET /x\nprint(1)"])
    manifest = tmp_path / "fngw.yaml"
    manifest.write_text("version: 1\nnotebooks:\n  nb: {path: nb.ipynb, colour: red}\ndefaults: {timeout: soon}\n")
    validate = subprocess.run(
        [sys.executable, "-m", "fngw", "validate", str(manifest)], capture_output=True, text=True, timeout=60
    )
    assert validate.returncode == 1
    gw = Gateway(env=gateway_env(FNGW_MANIFEST=str(manifest)))
    code, err = gw.wait_exit()
    assert code != 0
    for line in validate.stdout.splitlines():
        assert line in err.splitlines()
    assert "Traceback" not in err


def test_missing_manifest_file_is_one_clear_line(tmp_path):
    gw = Gateway(env=gateway_env(FNGW_MANIFEST=str(tmp_path / "nope.yaml")))
    code, err = gw.wait_exit()
    assert code != 0
    assert f"fngw: cannot read the manifest {tmp_path / 'nope.yaml'} ($FNGW_MANIFEST)" in err
    assert "Traceback" not in err


def test_local_fngw_yaml_is_preferred_over_the_shipped_default(tmp_path):
    write_notebook(tmp_path / "nb.ipynb", ["# GET /x\nprint(1)"])
    (tmp_path / "fngw.yaml").write_text("version: 1\nserver: {base_url: /local}\nnotebooks:\n  nb: {path: nb.ipynb}\n")
    (tmp_path / "gunicorn.conf.py").write_text((REPO / "gunicorn.conf.py").read_text())
    with Gateway(cwd=tmp_path) as gw:
        gw.wait_ready("/local/_fngw/health")


def test_worker_without_gevent_exits_with_one_line_saying_how_to_run():
    gw = Gateway("--worker-class", "sync")
    code, err = gw.wait_exit()
    assert code != 0
    hints = [line for line in err.splitlines() if line.startswith("fngw:")]
    assert hints == [
        "fngw: the gateway runs on gevent workers: start it as `gunicorn fngw.wsgi` from the folder that "
        "holds fngw's gunicorn.conf.py, or add `--worker-class gevent`"
    ]
    assert "Traceback" not in err


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(REPO)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (built,) = out.glob("fngw-*.whl")
    unpacked = out / "site"
    with zipfile.ZipFile(built) as zf:
        zf.extractall(unpacked)
    return unpacked


def test_installed_wheel_finds_its_default_manifest_schema_and_example(wheel, tmp_path):
    code = (
        "import json; from fngw.server.startup import manifest_path; from fngw.deployment import check_deployment;"
        "p = manifest_path(); r = check_deployment(p);"
        "print(json.dumps([str(p), r.ok, [x.format_text() for x in r.problems]]))"
    )
    env = gateway_env(PYTHONPATH=str(wheel))
    run = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0, run.stderr
    path, ok, problems = json.loads(run.stdout)
    assert path == str(wheel / "fngw" / "_data" / "config" / "fngw.yaml")
    assert ok and problems == []


def test_sigterm_does_not_wait_for_idle_keep_alive_connections():
    import http.client
    import time

    gw = Gateway()
    try:
        gw.wait_ready("/_fngw/ready")
        idle = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=30)
        idle.request("GET", "/_fngw/health")
        assert idle.getresponse().read() == b'{"status": "ok"}'  # the connection stays open, idle
        started = time.monotonic()
        code = gw.stop()
        assert code == 0
        assert time.monotonic() - started < 5, gw.stderr  # graceful_timeout is 8 s
        assert "graceful timeout" not in gw.stderr.lower()
        idle.close()
    finally:
        gw.stop()
