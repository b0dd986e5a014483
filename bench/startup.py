"""What a gunicorn worker's start costs in imports, with and without fngw deferring the iri grammar
jsonschema imports (``fngw/lazy_imports.py``): the part of a reload, a worker start and every
``fngw validate`` that fngw controls before any kernel starts.

    .venv/bin/python bench/startup.py [--rounds 9]

Modes, each a fresh interpreter that gevent-patches itself and imports what a worker imports, in
alternating rounds so machine noise hits them alike:
- ``eager``: ``rfc3987_syntax`` imported first, as it is without fngw's deferral (jsonschema
  imports it when it is installed, which jupyter_server's dependencies do);
- ``deferred``: as fngw runs.

Prints the median seconds of each mode and their ratio.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

WORKER_IMPORTS = "import fngw.server.gateway, fngw.deployment, fngw.server.application"
MODES = {
    "eager": f"from gevent import monkey; monkey.patch_all(); import rfc3987_syntax; {WORKER_IMPORTS}",
    "deferred": f"from gevent import monkey; monkey.patch_all(); {WORKER_IMPORTS}",
}


def once(code: str) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()
    times: dict[str, list[float]] = {mode: [] for mode in MODES}
    for _ in range(args.rounds):
        for mode, code in MODES.items():
            times[mode].append(once(code))
    medians = {mode: statistics.median(values) for mode, values in times.items()}
    for mode, median in medians.items():
        print(f"{mode:9} {median:.3f} s  (min {min(times[mode]):.3f}, max {max(times[mode]):.3f})")
    print(f"deferred/eager: {medians['deferred'] / medians['eager']:.2f}x")


if __name__ == "__main__":
    main()
