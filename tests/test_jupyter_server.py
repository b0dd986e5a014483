"""A real client end to end: Jupyter Server with --gateway-url pointing at fngw."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO
from gateway import Gateway, HttpPeer, free_port, gateway_env
from messages import execute_request
from websockets.sync.client import connect

TOKEN = "js-token"


@contextlib.contextmanager
def running_jupyter_server(tmp_path: Path, gateway_port: int):
    """Jupyter Server with ``--gateway-url`` at 127.0.0.1:``gateway_port``, stopped by its PID."""
    port = free_port()
    env = gateway_env(
        JUPYTER_RUNTIME_DIR=str(tmp_path / "rt"),
        JUPYTER_DATA_DIR=str(tmp_path / "data"),
        JUPYTER_CONFIG_DIR=str(tmp_path / "cfg"),
    )
    server = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("jupyter-server")),
            "--allow-root",
            "--no-browser",
            f"--gateway-url=http://127.0.0.1:{gateway_port}",
            f"--port={port}",
            "--ip=127.0.0.1",
            f"--IdentityProvider.token={TOKEN}",
            f"--ServerApp.root_dir={tmp_path}",
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    client = HttpPeer(port, server)
    try:
        client.wait_ready("/api/status?token=" + TOKEN, timeout=60)
        yield client
    finally:
        server.terminate()
        try:
            server.wait(15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        server.stderr.close()


@pytest.fixture
def jupyter_server(tmp_path):
    gateway = Gateway(env=gateway_env(FNGW_MANIFEST=str(REPO / "tests" / "kernel_api" / "fngw.yaml")))
    try:
        gateway.wait_ready()
        with running_jupyter_server(tmp_path, gateway.port) as client:
            yield client
    finally:
        gateway.stop()


def run_notebook_code(jupyter_server: HttpPeer, code: str) -> str:
    """Through Jupyter Server's own API: a session (and its kernel, on the gateway), ``code`` run
    over its websocket, the session deleted; what the code printed."""
    auth = {"Authorization": f"token {TOKEN}", "Content-Type": "application/json"}
    body = json.dumps({"path": "demo.ipynb", "type": "notebook", "kernel": {"name": "python3"}}).encode()
    status, _, raw = jupyter_server.request("POST", "/api/sessions", body=body, headers=auth, timeout=60)
    assert status == 201, raw
    session = json.loads(raw)
    kernel_id = session["kernel"]["id"]
    msg_id, request = execute_request(code, "js")
    url = f"ws://127.0.0.1:{jupyter_server.port}/api/kernels/{kernel_id}/channels?session_id=js&token={TOKEN}"
    output, replied, idle = [], False, False
    deadline = time.monotonic() + 60
    with connect(url) as ws:
        ws.send(json.dumps(request))
        while time.monotonic() < deadline and not (replied and idle):
            reply = ws.recv(timeout=30)
            if not isinstance(reply, str):
                continue
            msg = json.loads(reply)
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            if msg["msg_type"] == "stream":
                output.append(msg["content"]["text"])
            replied = replied or msg["msg_type"] == "execute_reply"
            idle = idle or (msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle")
    status, _, _ = jupyter_server.request("DELETE", f"/api/sessions/{session['id']}", headers=auth, timeout=60)
    assert status == 204
    return "".join(output)


def test_jupyter_server_runs_code_through_fngw(jupyter_server):
    assert run_notebook_code(jupyter_server, "print(seeded, 6 * 7)") == "yes 42\n"
