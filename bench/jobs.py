"""Asynchronous calls: how fast a job is accepted, and how fast queued jobs drain compared with
synchronous calls on the same pool, for both stores.

    .venv/bin/python bench/jobs.py [--jobs 1000] [--pool 2] [--sync 400]

One gunicorn worker, a pool of ``--pool`` kernels, a cell that prints one line. For each store
(the default SQLite file, then a redis-server this script starts on 127.0.0.1 and stops):

1. synchronous throughput: ``--sync`` calls from ``--pool`` keep-alive clients (one per kernel);
2. submission latency: ``--jobs`` calls with ``Prefer: respond-async`` from two keep-alive clients,
   as fast as the gateway accepts them (the runner drains meanwhile, as it would in production);
3. drain rate: the jobs still waiting once the last was accepted, over the time from then to the
   last one's end (the jobs' own times in the store).

Figures are ratios within one run: the machine (2 cores) runs kernels, gateway, Redis and clients.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_notebook

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from common import free_port, start_fngw, stop  # noqa: E402

from fngw.jobs import SqliteJobStore  # noqa: E402
from fngw.jobs.redis_store import RedisJobStore  # noqa: E402
from fngw.jobs.stores import default_store_path  # noqa: E402


def service(folder: Path, pool: int, store: str | None) -> Path:
    meta = {"kernelspec": {"name": "python3", "display_name": "Python 3"}, "language_info": {"name": "python"}}
    cells = [new_code_cell("# GET /work\nprint('done')")]
    nbformat.write(new_notebook(cells=cells, metadata=meta), folder / "bench.ipynb")
    manifest: dict = {
        "version": 1,
        "defaults": {"timeout": "60s", "pool": {"size": pool, "max_queue": 50, "queue_timeout": "60s"}},
        "jobs": {"max_queued": 100_000, "ttl": "1h"},
        "notebooks": {"bench": {"path": "bench.ipynb"}},
    }
    if store is not None:
        manifest["jobs"]["store"] = store
    (folder / "fngw.yaml").write_text(json.dumps(manifest))
    return folder / "fngw.yaml"


def calls(port: int, count: int, headers: dict[str, str], latencies: list[float]) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    for _ in range(count):
        started = time.perf_counter()
        conn.request("GET", "/work", headers=headers)
        response = conn.getresponse()
        response.read()
        latencies.append(time.perf_counter() - started)
        assert response.status in (200, 202), response.status
    conn.close()


def parallel(port: int, clients: int, total: int, headers: dict[str, str]) -> tuple[float, list[float]]:
    latencies: list[float] = []
    share = total // clients
    threads = [threading.Thread(target=calls, args=(port, share, headers, latencies)) for _ in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started, latencies


def measure(name: str, manifest: Path, store, args: argparse.Namespace) -> dict:
    port = free_port()
    proc = start_fngw(manifest, port)
    try:
        parallel(port, args.pool, 40, {})  # warm up
        seconds, _ = parallel(port, args.pool, args.sync, {})
        sync_rate = args.sync / seconds
        _, submitted = parallel(port, 2, args.jobs, {"Prefer": "respond-async"})
        accepted_all = time.time()
        deadline = time.monotonic() + 600
        while store.waiting()[0] and time.monotonic() < deadline:
            time.sleep(0.2)  # cheap reads while the gateway drains: the bench must not load the store
        while store.counts().by_status["succeeded"] < args.jobs and time.monotonic() < deadline:
            time.sleep(0.5)
        jobs = store.jobs(everyone=True)
        # The drain proper: jobs that finished after the last one was accepted (the queue then
        # holds most of them), over the time they took; submissions no longer compete for the CPU.
        after = [job.finished for job in jobs if job.finished and job.finished > accepted_all]
        drain_rate = len(after) / (max(after) - accepted_all)
        queued_at_end = len(after)
    finally:
        stop(proc)
    submitted.sort()
    return {
        "store": name,
        "sync_per_s": round(sync_rate, 1),
        "drain_per_s": round(drain_rate, 1),
        "drain_vs_sync": round(drain_rate / sync_rate, 2),
        "submit_p50_ms": round(statistics.median(submitted) * 1000, 2),
        "submit_p99_ms": round(submitted[int(len(submitted) * 0.99)] * 1000, 2),
        "queued_when_all_accepted": queued_at_end,
        "succeeded": store.counts().by_status["succeeded"],
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--pool", type=int, default=2)
    parser.add_argument("--sync", type=int, default=400)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="fngw-bench-jobs-"))
    os.environ["FNGW_STATE_DIR"] = str(folder / "state")
    results = []
    try:
        manifest = service(folder, args.pool, None)
        results.append(measure("sqlite", manifest, SqliteJobStore(default_store_path(manifest)), args))
        redis_port = free_port()
        redis = subprocess.Popen(
            ["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
        )
        try:
            url = f"redis://127.0.0.1:{redis_port}/0"
            time.sleep(0.5)
            results.append(measure("redis", service(folder, args.pool, url), RedisJobStore(url), args))
        finally:
            redis.terminate()
            redis.wait(10)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print(json.dumps({"jobs": args.jobs, "pool": args.pool, "results": results}, indent=2))


if __name__ == "__main__":
    main()
