"""Does a pool kernel's memory stay flat under load? (issue 16)

Serves the notebook of ``bench/notebook_http.py`` from fngw with a pool of one kernel, warms it
with 1,000 requests, then sends ``--requests`` GET and as many POST requests and reads the kernel's
memory between rounds: RSS, and USS (its private pages, from ``/proc/PID/smaps_rollup``), which is
what the kernel itself allocated.

    .venv/bin/python bench/kernel_memory.py [--requests 10000]

Prints one line per round and the growth after warm-up; the target is at most 1 MB over 10,000.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402
import notebook_http  # noqa: E402
from common import ROOT  # noqa: E402


def memory_kb(pid: int) -> tuple[int, int]:
    """(RSS, USS) of ``pid`` in KiB."""
    fields = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        name, value = line.split(":", 1)
        fields[name] = int(value.split()[0])
    return fields["Rss"], fields["Private_Clean"] + fields["Private_Dirty"]


def send(port: int, method: str, count: int) -> int:
    run = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "loadgen.py"), str(port), method, "4", "600", str(count)],
        capture_output=True,
        text=True,
        timeout=700,
    )
    if run.returncode != 0:
        raise RuntimeError(run.stderr)
    summary = json.loads(run.stdout)
    if summary["errors"] or set(summary["statuses"]) != {"200"}:
        raise RuntimeError(f"requests failed: {summary}")
    return summary["answered"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="fngw-bench-memory-"))
    proc = None
    try:
        notebook = notebook_http.write_notebook(folder)
        port = common.free_port()
        proc = notebook_http.start_fngw(folder, notebook, 1, port)
        [worker] = common.children(proc.pid)
        [kernel] = common.children(worker)
        send(port, "GET", 500)
        send(port, "POST", 500)
        rss0, uss0 = memory_kb(kernel)
        print(f"after warm-up: RSS {rss0 / 1024:.1f} MB, USS {uss0 / 1024:.1f} MB")
        for round_ in range(1, args.rounds + 1):
            answered = send(port, "GET", args.requests) + send(port, "POST", args.requests)
            rss, uss = memory_kb(kernel)
            print(
                f"round {round_}: {answered} more requests, RSS {rss / 1024:.1f} MB ({(rss - rss0) / 1024:+.2f}),"
                f" USS {uss / 1024:.1f} MB ({(uss - uss0) / 1024:+.2f})"
            )
    finally:
        if proc is not None:
            common.stop(proc)
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
