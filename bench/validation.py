"""What a typed endpoint costs per request: a POST with a 20-field JSON body declared by a schema,
beside the same request to an untyped endpoint, through the gateway's own Falcon application.

    .venv/bin/python bench/validation.py [--n 3000] [--rounds 5]

The kernel is a stub that answers at once, so the time measured is the gateway's (parsing,
validation, REQUEST, rendering); rounds alternate between the two endpoints so machine noise
hits both alike. Also times the validator alone (`RequestValidator.validate`).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import falcon.testing
import nbformat
from nbformat.v4 import new_code_cell, new_notebook

from fngw.contracts import RequestValidator
from fngw.deployment import check_deployment
from fngw.kernels import ExecutionResult
from fngw.server.app import create_app

TYPES = ("string", "integer", "number", "boolean")
BODY = {f"f{i}": ("text", 3, 2.5, True)[i % 4] for i in range(20)}


def schema() -> dict[str, Any]:
    properties = {}
    for i in range(20):
        kind = TYPES[i % 4]
        entry: dict[str, Any] = {"type": kind}
        if kind == "string":
            entry["maxLength"] = 50
        if kind in ("integer", "number"):
            entry["minimum"] = 0
        properties[f"f{i}"] = entry
    return {"type": "object", "required": sorted(properties), "additionalProperties": False, "properties": properties}


class StubPool:
    """Answers every execution at once with an empty result (the gateway's own work is measured)."""

    def __init__(self, name: str):
        self.name = name

    def acquire(self, queue_timeout: float | None = None) -> StubPool:
        return self

    def release(self, kernel: Any) -> None:
        pass

    id = "stub"

    def execute(self, code: str, **_: Any) -> ExecutionResult:
        return ExecutionResult(status="ok", stdout="ok\n")


class StubPools(dict):
    def __missing__(self, key: str) -> StubPool:
        return StubPool(key)


def deployment(folder: Path):
    cells = [new_code_cell("# POST /typed\nprint('ok')"), new_code_cell("# POST /untyped\nprint('ok')")]
    metadata = {"kernelspec": {"name": "python3", "display_name": "Python 3"}, "language_info": {"name": "python"}}
    nbformat.write(new_notebook(cells=cells, metadata=metadata), folder / "bench.ipynb")
    manifest = {
        "version": 1,
        "notebooks": {"bench": {"path": "bench.ipynb", "endpoints": {"POST /typed": {"request": {"body": schema()}}}}},
    }
    (folder / "fngw.yaml").write_text(json.dumps(manifest))
    checked = check_deployment(folder / "fngw.yaml", offline=True)
    assert checked.deployment is not None, checked.problems
    return checked.deployment


def timed(client: falcon.testing.TestClient, path: str, body: bytes, n: int) -> list[float]:
    headers = {"Content-Type": "application/json"}
    times = []
    for _ in range(n):
        started = time.perf_counter()
        result = client.simulate_post(path, body=body, headers=headers)
        times.append(time.perf_counter() - started)
        assert result.status_code == 200, result.text
    return times


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        checked = deployment(Path(folder))
    client = falcon.testing.TestClient(create_app(checked.manifest, checked.plan, StubPools()))
    body = json.dumps(BODY).encode()
    typed: list[float] = []
    untyped: list[float] = []
    for _ in range(args.rounds):
        untyped += timed(client, "/untyped", body, args.n)
        typed += timed(client, "/typed", body, args.n)
    route = next(r for r in checked.plan.routes if r.path == "/typed")
    assert route.settings.contract is not None
    validator = RequestValidator(route.settings.contract)
    alone = []
    for _ in range(args.n):
        started = time.perf_counter()
        validator.validate({}, {}, {}, BODY, True)
        alone.append(time.perf_counter() - started)
    med_typed, med_untyped = statistics.median(typed), statistics.median(untyped)
    print(
        json.dumps(
            {
                "requests_each": len(typed),
                "median_us_typed": round(1e6 * med_typed, 1),
                "median_us_untyped": round(1e6 * med_untyped, 1),
                "ratio": round(med_typed / med_untyped, 3),
                "added_us_per_request": round(1e6 * (med_typed - med_untyped), 1),
                "validator_alone_median_us": round(1e6 * statistics.median(alone), 1),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
