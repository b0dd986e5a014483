"""What tracing costs per notebook endpoint request, through the gateway's own Falcon application
with a stub kernel (bench/validation.py's), so the time measured is the gateway's own.

    .venv/bin/python bench/tracing.py [--n 3000] [--rounds 5] [--baseline COMMIT]

Modes, each in a fresh process, rounds alternating so machine noise hits them alike:
- ``baseline``: the code of COMMIT (default: the commit before tracing landed), from a git worktree;
- ``off``: this code with tracing off (the default);
- ``on``: tracing on: a SERVER span and three children per request, exported to the SDK's
  in-memory exporter as each ends (an upper bound of the request-path cost; the OTLP exporter
  batches off the request path).

Prints the median microseconds per request of each mode and the ratios off/baseline and on/off.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BEFORE_TRACING = "89e45b4"  # "Issue 17 review fixes", the parent of the tracing commit


def measure(mode: str, n: int) -> float:
    """The median seconds of ``n`` GETs of a printing endpoint (run in the process of that mode)."""
    import falcon.testing
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook

    sys.path.insert(0, str(ROOT / "bench"))
    from validation import StubPools

    from fngw.deployment import check_deployment
    from fngw.server.app import create_app

    with tempfile.TemporaryDirectory() as folder:
        metadata = {"kernelspec": {"name": "python3", "display_name": "Python 3"}, "language_info": {"name": "python"}}
        cells = [new_code_cell("# GET /hello\nprint('hello world')")]
        nbformat.write(new_notebook(cells=cells, metadata=metadata), Path(folder) / "bench.ipynb")
        (Path(folder) / "fngw.yaml").write_text(
            json.dumps({"version": 1, "notebooks": {"bench": {"path": "bench.ipynb"}}})
        )
        checked = check_deployment(Path(folder) / "fngw.yaml", offline=True)
    assert checked.deployment is not None, checked.problems
    kwargs = {}
    exporter = None
    if mode == "on":
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

        from fngw.telemetry.otel import SdkTracing
        from fngw.telemetry.tracing import TracingConfig

        exporter = InMemorySpanExporter()
        kwargs["tracing"] = SdkTracing(TracingConfig((), None, "bench", None), exporters=[exporter])
    client = falcon.testing.TestClient(
        create_app(checked.deployment.manifest, checked.deployment.plan, StubPools(), **kwargs)
    )
    headers = {"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}
    times = []
    for i in range(n):
        started = time.perf_counter()
        result = client.simulate_get("/hello", headers=headers)
        times.append(time.perf_counter() - started)
        assert result.status_code == 200, result.text
        if exporter is not None and i % 500 == 0:
            exporter.clear()
    return statistics.median(times)


def run_mode(mode: str, n: int, worktree: Path) -> float:
    bench = str(ROOT / "bench")
    code = f"import sys; sys.path.insert(0, {bench!r}); import tracing; print(tracing.measure({mode!r}, {n}))"
    cwd = worktree if mode == "baseline" else ROOT
    env_path = str(cwd)
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=cwd,
        env={"PYTHONPATH": env_path, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
    )
    if out.returncode != 0:
        raise SystemExit(f"{mode}: {out.stderr}")
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--baseline", default=BEFORE_TRACING)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        worktree = Path(folder) / "baseline"
        subprocess.run(["git", "worktree", "add", "-q", "--detach", str(worktree), args.baseline], cwd=ROOT, check=True)
        try:
            medians: dict[str, list[float]] = {"baseline": [], "off": [], "on": []}
            for _ in range(args.rounds):
                for mode in medians:
                    medians[mode].append(run_mode(mode, args.n, worktree))
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(worktree)], cwd=ROOT, check=True)
    us = {mode: round(1e6 * statistics.median(values), 1) for mode, values in medians.items()}
    print(
        json.dumps(
            {
                "requests_each": args.n * args.rounds,
                "median_us": us,
                "off_vs_baseline": round(us["off"] / us["baseline"], 3),
                "on_vs_off": round(us["on"] / us["off"], 3),
                "added_us_on": round(us["on"] - us["off"], 1),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
