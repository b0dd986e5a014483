"""Kernel API benchmark: fngw against Jupyter Kernel Gateway 3.0.1 (jupyter-websocket mode).

Both run in one go with the same ipykernel. Measures: POST /api/kernels to the first
kernel_info_reply over the kernel's websocket; the execute round trip over the websocket against
the direct jupyter_client round trip; execute latency with many idle websockets attached to the
kernel, whether they stay usable, and the server's RSS; RSS over 5 cycles of 200 connects.

    .venv/bin/python bench/kernel_api.py [--idle 5000] [--kg-idle 200] [--servers kg,fngw|fngw]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402
from common import (  # noqa: E402
    ROOT,
    ensure_kernel_gateway,
    free_port,
    kg_env,
    rss_mb,
    shell_message,
    stop,
    wait_http,
)
from websockets.sync.client import connect  # noqa: E402


def post_kernel(port: int) -> str:
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    conn.request("POST", "/api/kernels", body=b"{}", headers={"Content-Type": "application/json"})
    resp = conn.getresponse()
    return json.loads(resp.read())["id"]


def delete_kernel(port: int, kernel_id: str) -> None:
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    conn.request("DELETE", f"/api/kernels/{kernel_id}")
    conn.getresponse().read()


def post_to_first_reply(port: int) -> float:
    started = time.perf_counter()
    kernel_id = post_kernel(port)
    msg_id = uuid.uuid4().hex
    with connect(f"ws://127.0.0.1:{port}/api/kernels/{kernel_id}/channels?session_id=b") as ws:
        ws.send(shell_message("kernel_info_request", {}, msg_id))
        while True:
            msg = json.loads(ws.recv(timeout=120))
            if msg["msg_type"] == "kernel_info_reply" and msg["parent_header"].get("msg_id") == msg_id:
                break
    elapsed = time.perf_counter() - started
    delete_kernel(port, kernel_id)
    return elapsed * 1000


def ws_clients(port: int, kernel_id: str, idle: int, executes: int, server_pid: int = 0) -> dict:
    run = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "wsclient.py"),
            str(port),
            kernel_id,
            str(idle),
            str(executes),
            str(server_pid),
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    if run.returncode != 0:
        return {"error": run.stderr.strip().splitlines()[-1] if run.stderr else f"exit {run.returncode}"}
    return json.loads(run.stdout)


def direct_round_trip(executes: int) -> float:
    code = (
        "import time\nfrom jupyter_client.manager import start_new_kernel\n"
        "km, kc = start_new_kernel(kernel_name='python3')\nts = []\n"
        f"for _ in range({executes}):\n"
        "    t = time.perf_counter(); kc.execute_interactive('1', store_history=False, output_hook=lambda m: None)\n"
        "    ts.append(time.perf_counter() - t)\n"
        "kc.stop_channels(); km.shutdown_kernel(now=True)\nts.sort(); print(ts[len(ts) // 2] * 1000)\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    return float(run.stdout.strip().splitlines()[-1])


def measure(name: str, port: int, server_pid: int, idle: int, prewarm_wait: float) -> dict:
    posts = []
    for _ in range(5):
        time.sleep(prewarm_wait)  # let a prewarmed kernel be replaced, as between real users
        posts.append(post_to_first_reply(port))
    kernel_id = post_kernel(port)
    quiet = ws_clients(port, kernel_id, 0, 300)
    rss_before = rss_mb(server_pid)
    loaded = ws_clients(port, kernel_id, idle, 100, server_pid)
    rss_loaded_peak = loaded.get("server_rss_mb_open") or 0.0
    cycles_start = rss_mb(server_pid)
    for _ in range(5):
        ws_clients(port, kernel_id, 200, 5)
    cycles_end = rss_mb(server_pid)
    delete_kernel(port, kernel_id)
    return {
        "server": name,
        "post_to_first_reply_ms_median": statistics.median(posts),
        "ws_round_trip_p50_ms": quiet.get("p50_ms"),
        "idle_connections": idle,
        "with_idle": loaded,
        "rss_mb_before_idle": rss_before,
        "rss_mb_with_idle_open": rss_loaded_peak,
        "rss_mb_5_cycles_of_200": [cycles_start, cycles_end],
    }


def measure_kernel_gateway(idle: int) -> dict:
    kg = ensure_kernel_gateway()
    port = free_port()
    proc = subprocess.Popen(
        [
            str(kg),
            f"--KernelGatewayApp.port={port}",
            "--KernelGatewayApp.ip=127.0.0.1",
            "--JupyterWebsocketPersonality.list_kernels=True",
            "--log-level=ERROR",
        ],
        env=kg_env(),
        stdout=common.server_log("kg"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_http(port, "/api", proc)
        return measure("kg", port, proc.pid, idle, prewarm_wait=0.0)
    finally:
        stop(proc)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--idle", type=int, default=5000)
    parser.add_argument("--kg-idle", type=int, default=200)
    parser.add_argument("--servers", default="kg,fngw", help="kg,fngw or fngw alone")
    args = parser.parse_args()
    servers = set(args.servers.split(","))
    folder = Path(tempfile.mkdtemp(prefix="fngw-bench-"))
    manifest = folder / "fngw.yaml"
    manifest.write_text("version: 1\nkernel_api:\n  list_kernels: true\n  prewarm: 1\n")
    results = []

    port = free_port()
    proc = common.start_fngw(manifest, port)
    try:
        worker = common.children(proc.pid)[0]
        results.append(measure("fngw", port, worker, args.idle, prewarm_wait=2.0))
    finally:
        stop(proc)

    if "kg" in servers:
        results.append(measure_kernel_gateway(args.kg_idle))

    direct = direct_round_trip(300)
    for r in results:
        print(json.dumps(r))
    print(f"direct jupyter_client round trip p50: {direct:.2f} ms")
    fngw = results[0]
    print(f"fngw websocket round trip / direct: {fngw['ws_round_trip_p50_ms'] / direct:.2f}")
    with_idle = fngw["with_idle"].get("p50_ms")
    if with_idle:
        print(
            f"fngw execute p50 with {args.idle} idle websockets / without: "
            f"{with_idle / fngw['ws_round_trip_p50_ms']:.2f}"
        )
        grown = fngw["rss_mb_with_idle_open"] - fngw["rss_mb_before_idle"]
        print(f"fngw RSS per idle websocket: {grown * 1024 / max(1, fngw['with_idle']['opened']):.1f} KiB")


if __name__ == "__main__":
    main()
