"""Load benchmark: fngw against Jupyter Kernel Gateway 3.0.1's notebook-http, same notebook.

Kernel Gateway is installed by this script into its own virtual environment (bench/.kg-venv),
never as a project dependency, with the same ipykernel version as fngw's (the ipykernel version
alone moves these figures by about 20 %). Both servers serve the same notebook with pool sizes 1
and 4; a gevent load generator (a separate process) drives a GET endpoint that prints and a POST
endpoint that echoes JSON with a ResponseInfo cell, at 1, 8 and 64 concurrent keep-alive clients.
The direct-kernel limit is jupyter_client round trips of the same cell code.

    .venv/bin/python bench/notebook_http.py [--seconds 5]

Prints a Markdown table of requests/s and p50/p99, and the ratios the issue asks for.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_notebook

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402
from common import ROOT, ensure_kernel_gateway, free_port, kg_env, stop, wait_http  # noqa: E402

HELLO = "# GET /hello\nprint('hello world')"
ECHO = "# POST /echo\nreq = json.loads(REQUEST)\nprint(json.dumps(req['body']))"
ECHO_INFO = (
    "# ResponseInfo POST /echo\nprint(json.dumps({'status': 200, 'headers': {'Content-Type': 'application/json'}}))"
)


def write_notebook(folder: Path) -> Path:
    nb = new_notebook(
        metadata={
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
            "language_info": {"name": "python"},
        }
    )
    nb.cells = [new_code_cell("import json"), new_code_cell(HELLO), new_code_cell(ECHO), new_code_cell(ECHO_INFO)]
    path = folder / "bench.ipynb"
    nbformat.write(nb, str(path))
    return path


def start_kg(kg: Path, notebook: Path, pool: int, port: int) -> subprocess.Popen:
    env = kg_env()
    proc = subprocess.Popen(
        [
            str(kg),
            "--KernelGatewayApp.api=kernel_gateway.notebook_http",
            f"--KernelGatewayApp.seed_uri={notebook}",
            f"--KernelGatewayApp.prespawn_count={pool}",
            f"--KernelGatewayApp.port={port}",
            "--KernelGatewayApp.ip=127.0.0.1",
            "--log-level=ERROR",
        ],
        env=env,
        stdout=common.server_log("kg"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    wait_http(port, "/hello", proc)
    return proc


def start_fngw(
    folder: Path, notebook: Path, pool: int, port: int, max_queue: int = 1000, workers: int = 1
) -> subprocess.Popen:
    manifest = folder / f"fngw-{pool}-{max_queue}.yaml"
    manifest.write_text(
        f"version: 1\ndefaults:\n  timeout: 60s\n  pool: {{size: {pool}, max_queue: {max_queue}, queue_timeout: 60s}}\n"
        f"notebooks:\n  bench: {{path: {notebook.name}}}\n"
    )
    return common.start_fngw(manifest, port, workers=workers)


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds the processes ``pids`` have used (from /proc)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime: fields 14 and 15 of stat
    return total / os.sysconf("SC_CLK_TCK")


def gateway_pids(name: str, proc: subprocess.Popen) -> list[int]:
    """The gateway's own processes, kernels excluded: Kernel Gateway's one process; gunicorn's
    master and its workers (the kernels are the workers' children)."""
    return [proc.pid, *common.children(proc.pid)] if name == "fngw" else [proc.pid]


def kernel_pids(name: str, proc: subprocess.Popen) -> list[int]:
    """The kernels: children of fngw's workers, or of Kernel Gateway's process."""
    parents = common.children(proc.pid) if name == "fngw" else [proc.pid]
    return [pid for parent in parents for pid in common.children(parent)]


def load(port: int, method: str, clients: int, seconds: float) -> dict:
    run = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "loadgen.py"), str(port), method, str(clients), str(seconds)],
        capture_output=True,
        text=True,
        timeout=seconds + 120,
    )
    if run.returncode != 0:
        raise RuntimeError(run.stderr)
    return json.loads(run.stdout)


def direct_limit(kernels: int, seconds: float) -> float:
    """Round trips/s of the GET cell's code straight through jupyter_client, on ``kernels`` kernels."""
    code = (
        "import json, sys, threading, time\n"
        "from jupyter_client.manager import start_new_kernel\n"
        f"n = {kernels}; seconds = {seconds}\n"
        "pairs = [start_new_kernel(kernel_name='python3') for _ in range(n)]\n"
        "counts = [0] * n\n"
        "def drive(i):\n"
        "    kc = pairs[i][1]; end = time.monotonic() + seconds\n"
        "    while time.monotonic() < end:\n"
        "        kc.execute_interactive(\"print('hello world')\", store_history=False, output_hook=lambda m: None)\n"
        "        counts[i] += 1\n"
        "threads = [threading.Thread(target=drive, args=(i,)) for i in range(n)]\n"
        "[t.start() for t in threads]; [t.join() for t in threads]\n"
        "[(kc.stop_channels(), km.shutdown_kernel(now=True)) for km, kc in pairs]\n"
        "print(sum(counts) / seconds)\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=seconds + 120)
    if run.returncode != 0:
        raise RuntimeError(run.stderr)
    return float(run.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--pools", default="1,4")
    parser.add_argument("--clients", default="1,8,64")
    parser.add_argument("--servers", default="kg,fngw", help="kg,fngw or fngw alone")
    parser.add_argument("--workers", type=int, default=1, help="fngw's gunicorn workers (each with its pools)")
    args = parser.parse_args()
    kg = ensure_kernel_gateway() if "kg" in args.servers.split(",") else Path("/nonexistent")
    folder = Path(tempfile.mkdtemp(prefix="fngw-bench-"))
    notebook = write_notebook(folder)
    rows = []
    try:
        for pool in [int(p) for p in args.pools.split(",")]:
            servers = (
                ("kg", lambda p, port: start_kg(kg, notebook, p, port)),
                ("fngw", lambda p, port: start_fngw(folder, notebook, p, port, workers=args.workers)),
            )
            for name, starter in [s for s in servers if s[0] in args.servers.split(",")]:
                port = free_port()
                proc = starter(pool, port)
                try:
                    for method in ("GET", "POST"):
                        for clients in [int(c) for c in args.clients.split(",")]:
                            pids, kernels = gateway_pids(name, proc), kernel_pids(name, proc)
                            before, kernels_before = cpu_seconds(pids), cpu_seconds(kernels)
                            result = load(port, method, clients, args.seconds)
                            spent = cpu_seconds(pids) - before
                            answered = max(1, result["answered"])
                            result["cpu_ms"] = spent * 1000 / answered
                            result["kernel_cpu_ms"] = (cpu_seconds(kernels) - kernels_before) * 1000 / answered
                            rows.append({"server": name, "pool": pool, "method": method, "clients": clients, **result})
                            print(json.dumps(rows[-1]), file=sys.stderr)
                finally:
                    stop(proc)
        # Backpressure: pool 4 with a queue of 8 under 64 clients; the excess must be refused fast.
        port = free_port()
        proc = start_fngw(folder, notebook, 4, port, max_queue=8)
        try:
            backpressure = load(port, "GET", 64, args.seconds)
        finally:
            stop(proc)
        direct = {n: direct_limit(n, args.seconds) for n in (1, 4)}
    finally:
        shutil.rmtree(folder, ignore_errors=True)

    def find(server, pool, method, clients):
        return next(
            r for r in rows if (r["server"], r["pool"], r["method"], r["clients"]) == (server, pool, method, clients)
        )

    print(
        "| server | pool | method | clients | req/s | p50 ms | p99 ms | gateway CPU ms/request"
        " | kernels' CPU ms/request | errors |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(
            f"| {r['server']} | {r['pool']} | {r['method']} | {r['clients']} | {r['rps']:.0f} | "
            f"{r['p50_ms']:.1f} | {r['p99_ms']:.1f} | {r['cpu_ms']:.2f} | {r['kernel_cpu_ms']:.2f} | {r['errors']} |"
        )
    print(f"\ndirect-kernel limit: {direct[1]:.0f} round trips/s on 1 kernel, {direct[4]:.0f} on 4\n")
    print(
        f"backpressure (fngw, pool 4, max_queue 8, 64 clients): {backpressure['rps']:.0f} req/s accepted, "
        f"accepted p99 {backpressure['p99_ms']:.1f} ms, {backpressure['refused']} refused with 503, "
        f"503 p99 {backpressure['refused_p99_ms']:.1f} ms, other errors {backpressure['errors']}\n"
    )
    wanted = {
        "GET pool 4, 8 clients, throughput fngw/kg": (("fngw", 4, "GET", 8), ("kg", 4, "GET", 8), "rps", None),
        "POST+ResponseInfo pool 4, 8 clients, throughput fngw/kg": (
            ("fngw", 4, "POST", 8),
            ("kg", 4, "POST", 8),
            "rps",
            None,
        ),
        "GET pool 1, 1 client, p50 fngw/kg": (("fngw", 1, "GET", 1), ("kg", 1, "GET", 1), "p50_ms", None),
        "GET pool 1, 1 client, throughput fngw/direct(1 kernel)": (("fngw", 1, "GET", 1), None, "rps", direct[1]),
        "GET pool 4, 8 clients, throughput fngw/direct(4 kernels)": (("fngw", 4, "GET", 8), None, "rps", direct[4]),
    }
    for name, (ours, theirs, key, reference) in wanted.items():
        try:
            value = find(*ours)[key] / (reference if theirs is None else find(*theirs)[key])
        except StopIteration:
            continue  # not measured in this run
        print(f"- {name}: {value:.2f}")


if __name__ == "__main__":
    main()
