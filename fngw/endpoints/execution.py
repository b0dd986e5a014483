"""Running one request on a kernel in as few executions as the semantics allow.

Kernel Gateway spends two or three executions per request: the ``REQUEST`` assignment, the cell,
the ResponseInfo cell. Here the assignment shares the first line of the cell (whose first line is
always the annotation comment), so line numbers in tracebacks stay those of the notebook, and the
cell runs in one execution. With a ResponseInfo cell, a Python endpoint whose last statement cannot
produce an ``execute_result`` runs cell and ResponseInfo together too, printing a random marker
between them; the output is split at the marker. Otherwise the ResponseInfo runs as a second
execution. Every execution uses ``store_history=False``, so requests do not grow the kernel's
history.
"""

from __future__ import annotations

import ast
import secrets
from dataclasses import dataclass, field
from typing import Any

from fngw.kernels import ExecutionError, ExecutionResult, Kernel, KernelPool
from fngw.notebook import Endpoint

from .languages import print_marker, request_assignment


@dataclass(frozen=True)
class ExecutionPlan:
    """How an endpoint runs: fused (one execution) or split (two), decided once per endpoint."""

    endpoint: Endpoint
    language: str
    fused: bool

    @classmethod
    def for_endpoint(cls, endpoint: Endpoint, language: str) -> ExecutionPlan:
        """Fused (cell and ResponseInfo in one execution) when the language can print a marker and the
        cell's last statement produces no result."""
        fused = endpoint.response_info is not None and language == "python" and _cannot_produce_result(endpoint.source)
        return cls(endpoint, language, fused)


@dataclass
class Outcome:
    """What the cell produced, and what its ResponseInfo printed (``None`` without one)."""

    cell: ExecutionResult
    response_info_stdout: str | None = None
    response_info_error: ExecutionError | None = None  # the ResponseInfo cell's error
    outputs: list[dict[str, Any]] = field(default_factory=list)


def _cannot_produce_result(source: str) -> bool:
    """True when the cell's last statement is not an expression whose value IPython would display."""
    try:
        tree = ast.parse(source)
    except SyntaxError:  # IPython syntax (magics, !shell) or a real error: run it the plain way
        return False
    if not tree.body:
        return True
    last = tree.body[-1]
    if not isinstance(last, ast.Expr):
        return True
    call = last.value
    return isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id == "print"


def _with_request(source: str, language: str, request_json: str) -> str:
    # On the annotation line itself: `REQUEST = ...; # GET /path`, so the cell's own lines keep
    # their numbers in tracebacks.
    return f"{request_assignment(language, request_json)}; {source}"


def streamed_code(plan: ExecutionPlan, request_json: str) -> str:
    """The code a streamed request runs: the cell alone (its ResponseInfo runs after it, so that
    nothing it prints reaches the stream)."""
    return _with_request(plan.endpoint.source, plan.language, request_json)


def run(
    plan: ExecutionPlan,
    pool: KernelPool,
    kernel: Kernel,
    request_json: str,
    timeout: float,
    max_output: int | None = None,
) -> Outcome:
    """Run the endpoint on ``kernel`` (leased from ``pool``) within ``timeout`` seconds, collecting
    at most ``max_output`` characters of output per execution; raises the kernel runtime's errors
    (``ExecutionTimeout``, ``OutputLimitExceeded``, ``KernelLost``)."""
    endpoint = plan.endpoint
    code = _with_request(endpoint.source, plan.language, request_json)
    if plan.fused:
        marker = f"fngw-response-info-{secrets.token_hex(16)}"
        code = f"{code}\n{print_marker(plan.language, marker)}\n{endpoint.response_info}"
        result = pool.execute(code, timeout=timeout, kernel=kernel, max_output=max_output)
        return _split(result, marker)
    result = pool.execute(code, timeout=timeout, kernel=kernel, max_output=max_output)
    outcome = Outcome(cell=result, outputs=result.outputs)
    if endpoint.response_info is not None and result.ok:
        info = pool.execute(endpoint.response_info, timeout=timeout, kernel=kernel, max_output=max_output)
        outcome.response_info_stdout = info.stdout
        outcome.response_info_error = info.error if not info.ok else None
    return outcome


def _split(result: ExecutionResult, marker: str) -> Outcome:
    separator = f"\n{marker}\n"
    before, found, after = result.stdout.partition(separator)
    if not found:  # the cell failed before the marker: everything is the cell's
        return Outcome(cell=result, outputs=result.outputs)
    cell = ExecutionResult(
        status=result.status if result.ok else "ok",
        stdout=before,
        stderr=result.stderr,
        outputs=result.outputs,
        execute_result=None,
        error=None,
        execution_count=result.execution_count,
        duration=result.duration,
        payload=result.payload,
        msg_id=result.msg_id,
    )
    return Outcome(
        cell=cell,
        response_info_stdout=after,
        response_info_error=result.error if not result.ok else None,
        outputs=result.outputs,
    )
