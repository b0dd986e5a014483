"""Helpers shared by the benchmarks: Kernel Gateway in its own venv, ports, starting and stopping."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from importlib.metadata import version
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
KG_VENV = ROOT / "bench" / ".kg-venv"
KG_VERSION = "3.0.1"


def ensure_kernel_gateway() -> Path:
    """Jupyter Kernel Gateway, with fngw's ipykernel version, in bench/.kg-venv (never a project
    dependency). Returns its command."""
    python = KG_VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(KG_VENV)], check=True)
    want = f"ipykernel=={version('ipykernel')}"
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", f"jupyter_kernel_gateway=={KG_VERSION}", want], check=True
    )
    return KG_VENV / "bin" / "jupyter-kernelgateway"


def kg_env() -> dict[str, str]:
    return {**os.environ, "JUPYTER_PATH": str(KG_VENV / "share" / "jupyter")}


def shell_message(msg_type: str, content: dict, msg_id: str, session: str = "bench") -> str:
    """A shell-channel request in the kernel websocket's legacy JSON framing."""
    header = {"msg_id": msg_id, "msg_type": msg_type, "username": session, "session": session, "version": "5.3"}
    return json.dumps(
        {"header": {**header, "date": ""}, "parent_header": {}, "metadata": {}, "content": content, "channel": "shell"}
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_log(name: str):
    """A file for a server's output: a pipe nobody reads would block the server once it fills."""
    import tempfile

    return tempfile.NamedTemporaryFile(prefix=f"fngw-bench-{name}-", suffix=".log", delete=False)


def wait_http(port: int, path: str, proc: subprocess.Popen, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}; see {getattr(proc, 'log_path', 'its log')}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", path)
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError("server did not come up")


def start_fngw(manifest: Path, port: int, ready_timeout: float = 90, workers: int = 1) -> subprocess.Popen:
    env = {**os.environ, "FNGW_MANIFEST": str(manifest)}
    log = server_log("fngw")
    proc = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("gunicorn")),
            "fngw.wsgi",
            "--bind",
            f"127.0.0.1:{port}",
            "--no-control-socket",
            "--workers",
            str(workers),
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    proc.log_path = log.name
    wait_http(port, "/_fngw/ready", proc, ready_timeout)
    return proc


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    out.append(int(entry.name))
            except OSError:
                pass
    return out
