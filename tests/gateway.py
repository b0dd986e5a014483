"""Running a real `gunicorn fngw.wsgi` for tests, and stopping it by PID."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
GUNICORN = str(Path(sys.executable).with_name("gunicorn"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def gateway_env(**extra: str) -> dict[str, str]:
    # PYTEST_CURRENT_TEST would reach the kernels, and ipykernel does not capture file-descriptor
    # output (subprocesses) when it sees it: kernels under test must behave as in production.
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("FNGW_") and k not in ("PORT", "PYTEST_CURRENT_TEST")
    }
    env.update(extra)
    return env


class HttpPeer:
    """HTTP calls to a server of ours on 127.0.0.1, and waiting for it to answer."""

    def __init__(self, port: int, proc: subprocess.Popen):
        self.port = port
        self.proc = proc

    def request(
        self, method: str, path: str, body: bytes | None = None, headers: dict | None = None, timeout: float = 10.0
    ) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
        finally:
            conn.close()

    def get_json(self, path: str) -> tuple[int, object]:
        status, _, body = self.request("GET", path)
        return status, json.loads(body)

    def describe(self) -> str:
        """What the server printed, once it has exited."""
        return self.proc.stderr.read() if self.proc.stderr else ""

    def wait_ready(self, path: str = "/_fngw/health", timeout: float = 60.0) -> None:
        """Until the health check answers; fails early if the master exits."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited with {self.proc.returncode}: {self.describe()}")
            try:
                status, _, _ = self.request("GET", path, timeout=1.0)
                if status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)  # polling a port that is not open yet; not synchronisation on state
        raise AssertionError(f"{path} did not answer 200 in time")


class Gateway(HttpPeer):
    """A gunicorn master started from the repository root, so gunicorn.conf.py applies."""

    def __init__(self, *args: str, env: dict[str, str] | None = None, port: int | None = None, cwd: Path = REPO):
        port = port or free_port()
        bind = [] if "PORT" in (env or {}) else ["--bind", f"127.0.0.1:{port}"]
        # Output goes to a file: the gateway logs a line per request, and a pipe nobody reads
        # would fill up and block it.
        self.log = tempfile.NamedTemporaryFile(prefix="fngw-test-gateway-", suffix=".log")  # noqa: SIM115 - lives as long as the gateway
        proc = subprocess.Popen(
            [GUNICORN, "fngw.wsgi", *bind, "--no-control-socket", *args],
            cwd=cwd,
            env=env or gateway_env(),
            stdout=self.log,
            stderr=subprocess.STDOUT,
            text=True,
        )
        super().__init__(port, proc)

    @property
    def output(self) -> str:
        """Everything the gateway printed so far (stdout and stderr)."""
        return Path(self.log.name).read_text(errors="replace")

    @property
    def stderr(self) -> str:
        return self.output

    def describe(self) -> str:
        return self.output

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM to the master's PID; SIGKILL if it does not exit in time."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def wait_exit(self, timeout: float = 60.0) -> tuple[int, str]:
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"gateway did not exit: {self.output}") from None
        return self.proc.returncode, self.output

    def __enter__(self) -> Gateway:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def children_of(pid: int) -> list[int]:
    """PIDs whose parent is ``pid`` (from /proc), to check nothing is left behind."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == pid:
            found.append(int(entry.name))
    return found


def running(pid: int) -> bool:
    """The process exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def call_json(peer: HttpPeer, method: str, path: str, body=None, headers=None):
    """(status, headers, parsed JSON or None); ``body`` is sent as JSON unless it is bytes."""
    data = json.dumps(body).encode() if body is not None and not isinstance(body, bytes) else body
    status, response_headers, raw = peer.request(method, path, body=data, headers=headers or {}, timeout=60)
    return status, response_headers, (json.loads(raw) if raw else None)


def start_serve(*arguments: str) -> tuple[HttpPeer, subprocess.Popen]:
    """``fngw serve ARGUMENTS --port P`` (it becomes a gunicorn master), its output to a file
    (``peer.describe()`` reads it); the caller stops it by its PID."""
    port = free_port()
    log = tempfile.NamedTemporaryFile(prefix="fngw-test-serve-", suffix=".log")  # noqa: SIM115 - kept with the peer
    proc = subprocess.Popen(
        [sys.executable, "-m", "fngw", "serve", *arguments, "--port", str(port)],
        env=gateway_env(),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    peer = HttpPeer(port, proc)
    peer.log = log  # type: ignore[attr-defined]
    peer.describe = lambda: Path(log.name).read_text()  # type: ignore[method-assign]
    return peer, proc
