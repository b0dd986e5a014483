"""In-memory stand-ins for the kernel runtime, for the fast test tier.

``FakeKernel`` runs a cell's Python source with ``exec`` in a namespace of its own (stdout and
stderr captured), which is enough for the endpoint semantics: request parsing, routing,
ResponseInfo, rendering, errors, auth, CORS. ``FakePools`` has the surface ``create_app`` uses of
``GatewayPools``. Rich display output, IPython syntax and process faults need a real kernel: those
stay in the gunicorn tier.
"""

from __future__ import annotations

import contextlib
import io
import time
import uuid
from typing import Any

from fngw.kernels import ExecutionError, ExecutionResult, OutputLimitExceeded, PoolStats
from fngw.routing import PoolSpec, RoutePlan


class FakeKernel:
    """One namespace; ``run`` executes a cell in it."""

    def __init__(self, seed_cells: tuple[str, ...] = ()):
        self.id = str(uuid.uuid4())
        self.namespace: dict[str, Any] = {"__name__": "__main__"}
        for cell in seed_cells:
            result = self.run(cell)
            assert result.ok, result.error

    def interrupt(self) -> None:
        self.interrupted = True

    def run(self, code: str, max_output: int | None = None) -> ExecutionResult:
        out, err = io.StringIO(), io.StringIO()
        started = time.monotonic()
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                exec(compile(code, "<cell>", "exec"), self.namespace)  # noqa: S102 - the test's own cells
            result = ExecutionResult(status="ok")
        except BaseException as exc:  # noqa: BLE001 - a cell may raise anything, SystemExit included
            result = ExecutionResult(status="error", error=ExecutionError(type(exc).__name__, str(exc), []))
        result.stdout, result.stderr = out.getvalue(), err.getvalue()
        result.duration = time.monotonic() - started
        if max_output is not None and len(result.stdout) + len(result.stderr) > max_output:
            raise OutputLimitExceeded(f"the output exceeded {max_output} bytes", max_output)
        return result


class FakePool:
    """A pool of one ``FakeKernel``, never busy."""

    def __init__(self, spec: PoolSpec):
        self.name = spec.id
        self.kernel = FakeKernel(spec.seed_cells)
        self.executions = 0

    def acquire(self, queue_timeout: float | None = None, wait: bool = True) -> FakeKernel:
        return self.kernel

    def release(self, kernel: FakeKernel) -> None:
        pass

    def execute(
        self, code: str, *, timeout: float | None, kernel: FakeKernel | None = None, max_output: int | None = None
    ) -> ExecutionResult:
        self.executions += 1
        return (kernel or self.kernel).run(code, max_output)

    def stats(self) -> PoolStats:
        return PoolStats(self.name, 1, 1, 0, 0, 0, self.executions, 0, 1, 0, 0, 0, 0)


class FakePools:
    """A ``FakePool`` for every pool of ``plan``."""

    def __init__(self, plan: RoutePlan):
        self.pools = {pid: FakePool(spec) for pid, spec in plan.pools.items()}

    def __getitem__(self, pool_id: str) -> FakePool:
        return self.pools[pool_id]

    def readiness_gaps(self) -> list[str]:
        return []

    def start(self) -> None:
        pass

    def shutdown(self) -> None:
        pass
