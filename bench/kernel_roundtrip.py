"""Execute round trip: fngw's gevent Kernel against jupyter_client's BlockingKernelClient.

Both drive kernels of the same kernelspec with the same code, in alternating rounds within one run,
so machine noise hits both alike; results are ratios. Each kernel has one client: a
``BlockingKernelClient`` in this process blocks the gevent hub while it waits, and a kernel it
shares with fngw stopped answering fngw's next request in this set-up (seen 2026-12-01, with
zmq.green sockets as with plain ones). Also measures the longest stall of the gevent
hub while a cell streams 10 MB of output.

    .venv/bin/python bench/kernel_roundtrip.py [--n 300] [--rounds 3] [--parallel 4]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import threading
import time
from pathlib import Path

import gevent
from jupyter_client.blocking.client import BlockingKernelClient

from fngw.kernels import Kernel

CODE = "1 + 1"


def fngw_sequential(kernel: Kernel, n: int) -> list[float]:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        kernel.execute(CODE, 30)
        times.append(time.perf_counter() - t0)
    return times


def direct_client(connection_file: str) -> BlockingKernelClient:
    client = BlockingKernelClient(connection_file=connection_file)
    client.load_connection_file()
    client.start_channels()
    client.wait_for_ready(timeout=30)
    return client


def direct_sequential(client: BlockingKernelClient, n: int) -> list[float]:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        client.execute_interactive(CODE, store_history=False, timeout=30, output_hook=lambda msg: None)
        times.append(time.perf_counter() - t0)
    return times


def fngw_parallel(kernels: list[Kernel], n: int) -> float:
    t0 = time.perf_counter()
    gevent.joinall([gevent.spawn(fngw_sequential, k, n) for k in kernels], raise_error=True)
    return len(kernels) * n / (time.perf_counter() - t0)


def direct_parallel(clients: list[BlockingKernelClient], n: int) -> float:
    threads = [threading.Thread(target=direct_sequential, args=(c, n)) for c in clients]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return len(clients) * n / (time.perf_counter() - t0)


def hub_stall_during_stream(kernel: Kernel, megabytes: int = 10) -> dict[str, float]:
    """Longest time a 1 ms ticker greenlet was kept from running while output streamed in."""
    worst = 0.0
    running = True

    def ticker() -> None:
        nonlocal worst
        while running:
            t0 = time.perf_counter()
            gevent.sleep(0.001)
            worst = max(worst, time.perf_counter() - t0 - 0.001)

    tick = gevent.spawn(ticker)
    gevent.sleep(0.01)
    t0 = time.perf_counter()
    code = f"import sys\nline = 'x' * 1023\nfor _ in range({megabytes} * 1024):\n    print(line)"
    result = kernel.execute(code, 120)
    elapsed = time.perf_counter() - t0
    running = False
    tick.join()
    return {"stdout_mb": len(result.stdout) / 1e6, "seconds": elapsed, "max_hub_stall_ms": worst * 1000}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=300, help="executions per round and kernel")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--parallel", type=int, default=4)
    args = parser.parse_args()

    runtime = Path(tempfile.mkdtemp(prefix="fngw-bench-"))
    kernels = [Kernel("python3", runtime_dir=runtime) for _ in range(args.parallel)]
    for_direct = [Kernel("python3", runtime_dir=runtime) for _ in range(args.parallel)]
    gevent.joinall([gevent.spawn(k.start) for k in kernels + for_direct], raise_error=True)
    # Before any direct client connects: their heartbeat threads would compete for the GIL.
    stalls = [hub_stall_during_stream(kernels[0]) for _ in range(3)]
    clients = [direct_client(str(k._dir / "connection.json")) for k in for_direct]
    try:
        fngw_sequential(kernels[0], 50)  # warm both paths
        direct_sequential(clients[0], 50)
        seq_f, seq_d, par_f, par_d = [], [], [], []
        for _ in range(args.rounds):
            seq_f += fngw_sequential(kernels[0], args.n)
            seq_d += direct_sequential(clients[0], args.n)
            par_f.append(fngw_parallel(kernels, args.n))
            par_d.append(direct_parallel(clients, args.n))
    finally:
        for c in clients:
            c.stop_channels()
        gevent.joinall([gevent.spawn(k.shutdown) for k in kernels + for_direct])
        shutil.rmtree(runtime, ignore_errors=True)

    def p(values: list[float], q: float) -> float:
        return sorted(values)[int(q * (len(values) - 1))] * 1000

    report = {
        "sequential": {
            "fngw_p50_ms": p(seq_f, 0.5),
            "direct_p50_ms": p(seq_d, 0.5),
            "fngw_p99_ms": p(seq_f, 0.99),
            "direct_p99_ms": p(seq_d, 0.99),
            "p50_ratio_fngw_over_direct": p(seq_f, 0.5) / p(seq_d, 0.5),
            "throughput_ratio_fngw_over_direct": (len(seq_f) / sum(seq_f)) / (len(seq_d) / sum(seq_d)),
        },
        f"parallel_{args.parallel}_kernels": {
            "fngw_exec_per_s": statistics.median(par_f),
            "direct_exec_per_s": statistics.median(par_d),
            "throughput_ratio_fngw_over_direct": statistics.median(par_f) / statistics.median(par_d),
        },
        "stream_10MB": {
            "runs": len(stalls),
            "seconds_median": statistics.median(r["seconds"] for r in stalls),
            "max_hub_stall_ms_median": statistics.median(r["max_hub_stall_ms"] for r in stalls),
            "max_hub_stall_ms_worst": max(r["max_hub_stall_ms"] for r in stalls),
        },
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
