"""The kernel API across two instances sharing a Redis registry (issue 17).

Starts a throwaway ``redis-server`` and two fngw instances (one gunicorn worker each, prewarm 1)
whose ``kernel_api.registry`` is that Redis, all on 127.0.0.1. Measures, in alternating rounds in
one run: the websocket execute round trip (p50 of 300) to the instance that runs the kernel, and
through the other instance, which splices the websocket to it; and ``POST /api/kernels`` to the
first ``kernel_info_reply`` (median of 7, a prewarmed kernel each time) with the Redis registry.

    .venv/bin/python bench/instances.py [--rounds 2]
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402
from common import free_port, stop  # noqa: E402
from kernel_api import delete_kernel, post_kernel, post_to_first_reply, ws_clients  # noqa: E402


def start_redis(folder: Path) -> tuple[subprocess.Popen, int]:
    port = free_port()
    proc = subprocess.Popen(
        [shutil.which("redis-server") or "/usr/bin/redis-server", "--port", str(port), "--bind", "127.0.0.1",
         "--save", "", "--appendonly", "no", "--dir", str(folder)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return proc, port
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("redis-server did not start")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="fngw-bench-instances-"))
    redis, redis_port = start_redis(folder)
    manifest = folder / "fngw.yaml"
    manifest.write_text(
        f"version: 1\nkernel_api:\n  list_kernels: true\n  prewarm: 1\n  registry: redis://127.0.0.1:{redis_port}/0\n"
    )
    instances = []
    try:
        for _ in range(2):
            port = free_port()
            os.environ["FNGW_INSTANCE_ADDRESS"] = f"http://127.0.0.1:{port}"
            instances.append((common.start_fngw(manifest, port), port))
        (_, a), (_, b) = instances
        time.sleep(3)  # the prewarmed kernels
        posts = []
        for _ in range(7):
            posts.append(post_to_first_reply(a))
            time.sleep(2)  # let the prewarmed kernel be replaced, as between real users
        kernel_id = post_kernel(a)
        direct, relayed = [], []
        for _ in range(args.rounds):
            direct.append(ws_clients(a, kernel_id, 0, 300)["p50_ms"])
            relayed.append(ws_clients(b, kernel_id, 0, 300)["p50_ms"])
        delete_kernel(a, kernel_id)
        median = statistics.median(posts)
        listed = ", ".join(f"{p:.1f}" for p in posts)
        print(
            f"POST /api/kernels to first kernel_info_reply, Redis registry, prewarm: median {median:.1f} ms ({listed})"
        )
        print(f"websocket execute p50 to the instance that runs the kernel: {', '.join(f'{d:.2f}' for d in direct)} ms")
        print(
            f"websocket execute p50 through the other instance (relayed): {', '.join(f'{r:.2f}' for r in relayed)} ms"
        )
        print(f"relayed / direct: {statistics.median(relayed) / statistics.median(direct):.2f}")
    finally:
        for proc, _ in instances:
            stop(proc)
        redis.terminate()
        redis.wait(10)
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
