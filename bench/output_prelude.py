"""What output isolation costs: execute round trips on a pool kernel with and without fngw's
output prelude, and what the other design (restarting a kernel whose cell left work behind) would
cost per occurrence.

    .venv/bin/python bench/output_prelude.py [--n 500] [--rounds 3]

Two kernels run side by side, one seeded with `output_prelude("python", isolate=True)` as pool
kernels are, one without; rounds alternate between them so machine noise hits both alike. The cell
prints one line, as an endpoint does. Then three restarts of the isolated kernel are timed.
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

from fngw.kernels import Kernel, SeedCell, output_prelude  # noqa: E402

CODE = "REQUEST = '{}'; # GET /x\nprint('hello, world')"


def round_trips(kernel: Kernel, n: int) -> list[float]:
    times = []
    for _ in range(n):
        started = time.perf_counter()
        result = kernel.execute(CODE, 30)
        times.append(time.perf_counter() - started)
        assert result.stdout == "hello, world\n", result
    return times


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    runtime = tempfile.mkdtemp(prefix="fngw-bench-prelude-")
    prelude = output_prelude("python", isolate=True)
    assert prelude is not None
    isolated = Kernel("python3", seed=[SeedCell(-1, prelude)], runtime_dir=runtime, label="isolated")
    plain = Kernel("python3", runtime_dir=runtime, label="plain")
    isolated.start()
    plain.start()
    try:
        with_prelude: list[float] = []
        without: list[float] = []
        for _ in range(args.rounds):
            without += round_trips(plain, args.n)
            with_prelude += round_trips(isolated, args.n)
        restarts = []
        for _ in range(3):
            started = time.perf_counter()
            isolated.restart()
            restarts.append(time.perf_counter() - started)
        med_with, med_without = statistics.median(with_prelude), statistics.median(without)
        print(
            json.dumps(
                {
                    "executions_each": len(with_prelude),
                    "median_ms_with_prelude": round(1000 * med_with, 3),
                    "median_ms_without": round(1000 * med_without, 3),
                    "ratio": round(med_with / med_without, 3),
                    "added_us": round(1e6 * (med_with - med_without), 1),
                    "restart_s_mean": round(statistics.mean(restarts), 2),
                },
                indent=2,
            )
        )
    finally:
        isolated.shutdown()
        plain.shutdown()


if __name__ == "__main__":
    main()
