"""Real services the tests start on 127.0.0.1 and stop by PID: redis-server, haproxy."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from gateway import free_port


def stop_process(proc: subprocess.Popen) -> None:
    """SIGTERM to ``proc``'s PID, SIGKILL if it has not exited within 10 s."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


class RedisServer:
    """A throwaway ``redis-server`` (no persistence) on a free port; ``url`` names its database 0."""

    def __init__(self) -> None:
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        assert Path(binary).exists(), "redis-server is not installed (the README's test set-up installs it)"
        self.port = free_port()
        self.folder = tempfile.mkdtemp(prefix="fngw-redis-")
        self.proc: subprocess.Popen | None = None
        self.binary = binary
        self.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start (again, on the same port after ``stop``) and wait until it answers."""
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", self.folder],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        """Stop it by its PID."""
        if self.proc is not None:
            stop_process(self.proc)
        self.proc = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)


class Haproxy:
    """A real round-robin load balancer (Debian's ``haproxy``) on a free port of 127.0.0.1 in front
    of ``backends`` (ports), without stickiness: consecutive requests, and websocket upgrades, go
    to the next backend in turn."""

    def __init__(self, backends: list[int]) -> None:
        binary = shutil.which("haproxy") or "/usr/sbin/haproxy"
        assert Path(binary).exists(), "haproxy is not installed (the README's test set-up installs it)"
        self.port = free_port()
        self.folder = tempfile.mkdtemp(prefix="fngw-haproxy-")
        config = Path(self.folder) / "haproxy.cfg"
        servers = "\n".join(f"    server s{i} 127.0.0.1:{port}" for i, port in enumerate(backends))
        config.write_text(
            "defaults\n    mode http\n    option http-server-close\n    timeout connect 5s\n"
            "    timeout client 120s\n    timeout server 120s\n    timeout tunnel 1h\n"
            f"frontend in\n    bind 127.0.0.1:{self.port}\n    default_backend gateways\n"
            f"backend gateways\n    balance roundrobin\n{servers}\n"
        )
        self.proc = subprocess.Popen(  # -db: in the foreground, so that its PID is the one to stop
            [binary, "-db", "-f", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("haproxy did not start")

    def close(self) -> None:
        """Stop it by its PID."""
        stop_process(self.proc)
        shutil.rmtree(self.folder, ignore_errors=True)
