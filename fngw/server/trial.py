"""``fngw test``: run every declared example against real kernels, without a server.

The gateway's own application (``create_app``, with the same middleware, validation and
rendering) answers each example through Falcon's test client, on kernels started from the
manifest, one per pool the examples need: examples of one pool run in manifest order on one
kernel, so a notebook's state carries from one to the next as it would on a pool of one.
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import falcon.testing
import gevent

from fngw.contracts import MISSING, Example, ResponseValidator, media_type
from fngw.deployment import Deployment
from fngw.kernels import KernelError, KernelPool, PoolUnavailable
from fngw.manifest import PoolSettings
from fngw.manifest.contracts import as_text
from fngw.routing import Route

from .app import create_app
from .pools import GatewayPools, PoolOptions

KERNEL_WAIT = 120.0  # seconds an example waits for its pool's kernel (a first start, a replacement)


@dataclass
class ExampleResult:
    """One example's outcome: ``problems`` is empty when it passed; ``seconds`` its request's time."""

    route: Route
    example: Example
    problems: list[str] = field(default_factory=list)
    status: int | None = None
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        """Whether the response was what the example expects."""
        return not self.problems

    @property
    def title(self) -> str:
        """``POST /orders/:region · two widgets``."""
        return f"{self.route.method} {self.route.path} · {self.example.name}"


def selected_routes(deployment: Deployment, endpoints: Sequence[str]) -> list[Route]:
    """Routes with examples in manifest order (notebooks, then their endpoints, as written),
    limited to the ``endpoints`` annotations (``POST /orders/:region``, as the manifest names them,
    or with the full path) when any are given."""
    order: dict[tuple[str, str], int] = {}
    for name, notebook in deployment.manifest.notebooks.items():
        for annotation in notebook.overrides:
            order[(name, annotation)] = len(order)
    routes = [r for r in deployment.plan.routes if r.settings.contract is not None and r.settings.contract.examples]
    if endpoints:
        wanted = set(endpoints)
        routes = [r for r in routes if r.endpoint.annotation in wanted or f"{r.method} {r.path}" in wanted]
    return sorted(routes, key=lambda r: order.get((r.notebook, r.endpoint.annotation), len(order)))


def run_examples(deployment: Deployment, routes: Sequence[Route]) -> list[ExampleResult]:
    """Start one kernel per pool ``routes`` use, answer every example of ``routes``, stop the
    kernels. Kernels that fail to start make their examples fail with the reason."""
    needed = {r.pool_id for r in routes}
    one_each = PoolSettings(size=1, max_queue=1000, queue_timeout=600.0)
    plan = dataclasses.replace(
        deployment.plan,
        routes=tuple(routes),
        pools={
            pid: dataclasses.replace(spec, settings=one_each)
            for pid, spec in deployment.plan.pools.items()
            if pid in needed
        },
    )
    with tempfile.TemporaryDirectory(prefix="fngw-test-") as runtime:
        pools = GatewayPools(plan, PoolOptions(runtime_dir=Path(runtime)))
        try:
            for pool in pools.pools.values():
                pool.start(wait=False)
            client = falcon.testing.TestClient(create_app(deployment.manifest, plan, pools))
            return [_run(client, pools, route, example) for route in routes for example in _examples(route)]
        finally:
            pools.shutdown(timeout=10.0)


def _examples(route: Route) -> tuple[Example, ...]:
    return route.settings.contract.examples if route.settings.contract is not None else ()


def _ready(pool: KernelPool, timeout: float = KERNEL_WAIT) -> str | None:
    """Wait until ``pool`` has a kernel to give (its first start, or the replacement of one an
    earlier example killed); why it has none, or None."""
    try:
        if not pool.wait_started(timeout):
            return f"no kernel of pool {pool.name} started within {timeout:g}s"
    except PoolUnavailable as exc:
        return f"its kernel could not start: {exc.cause or exc}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pool.stats().idle:
            return None
        if pool.last_error is not None:  # a replacement failed to start (it keeps trying, with backoff)
            return f"its kernel could not be replaced: {pool.last_error}"
        gevent.sleep(0.05)
    return f"no kernel of pool {pool.name} was ready within {timeout:g}s"


def _run(client: falcon.testing.TestClient, pools: GatewayPools, route: Route, example: Example) -> ExampleResult:
    result = ExampleResult(route, example)
    why = _ready(pools[route.pool_id])
    if why is not None:
        result.problems.append(why)
        return result
    body, content_type = _body(route, example)
    headers = {name: as_text(value) for name, value in example.headers.items()}
    if content_type is not None:
        headers["Content-Type"] = content_type
    started = time.perf_counter()
    try:
        response = client.simulate_request(
            route.method, _path(route, example), query_string=_query(example) or None, headers=headers, body=body
        )
    except KernelError as exc:  # the error map answers these; a bare kernel failure is the example's failure
        result.problems.append(f"the kernel failed: {exc}")
        return result
    result.seconds = time.perf_counter() - started
    result.status = response.status_code
    result.problems = _compare(route, example, response)
    return result


def _path(route: Route, example: Example) -> str:
    segments = []
    for segment in route.path.split("/"):
        if segment.startswith(":") and segment[1:] in example.path:
            segment = quote(as_text(example.path[segment[1:]]), safe="")
        segments.append(segment)
    return "/".join(segments)


def _query(example: Example) -> str:
    pairs = []
    for name, value in example.query.items():
        for item in value if isinstance(value, list) else [value]:
            pairs.append((name, as_text(item)))
    return urlencode(pairs)


def _body(route: Route, example: Example) -> tuple[bytes | None, str | None]:
    if example.body is MISSING:
        return None, None
    contract = route.settings.contract
    declared = contract.content_types[0] if contract is not None and contract.content_types else None
    content_type = example.content_type or declared or "application/json"
    media = media_type(content_type) or ""
    if media == "application/x-www-form-urlencoded" and isinstance(example.body, dict):
        return urlencode(
            {k: [as_text(x) for x in v] if isinstance(v, list) else as_text(v) for k, v in example.body.items()},
            doseq=True,
        ).encode(), content_type
    if media.startswith("text/") and isinstance(example.body, str):
        return example.body.encode(), content_type
    return json.dumps(example.body).encode(), content_type


def _compare(route: Route, example: Example, response: falcon.testing.Result) -> list[str]:
    problems = []
    expected = example.status
    if expected is not None and response.status_code != expected:
        problems.append(f"expected status {expected}, got {response.status_code}{_why(response)}")
    elif expected is None and not 200 <= response.status_code < 300:
        problems.append(f"expected a 2xx status, got {response.status_code}{_why(response)}")
    for name, value in example.response_headers.items():
        got = response.headers.get(name)
        if got != value:
            problems.append(f"expected header {name}: {value!r}, got {got!r}")
    if example.response_body is not MISSING and not problems:
        problems += _body_problems(example.response_body, response)
    contract = route.settings.contract
    if contract is not None and not problems:
        checker = ResponseValidator(contract)
        problems += checker.problems(response.status_code, response.headers.get("content-type"), response.content)
    return problems


def _why(response: falcon.testing.Result) -> str:
    try:
        message = response.json.get("message") if isinstance(response.json, dict) else None
    except ValueError:
        message = None
    return f" ({message})" if message else ""


def _body_problems(expected: Any, response: falcon.testing.Result) -> list[str]:
    media = media_type(response.headers.get("content-type")) or ""
    if media == "application/json" or media.endswith("+json"):
        try:
            got = json.loads(response.text)
        except ValueError as exc:
            return [f"the body is not JSON: {exc}"]
        mismatch = _mismatch(expected, got, "")
        return [f"body{mismatch}"] if mismatch else []
    text = expected if isinstance(expected, str) else json.dumps(expected)
    if response.text.rstrip() != text.rstrip():
        return [f"expected the body {text!r}, got {response.text[:200]!r}"]
    return []


def _mismatch(expected: Any, got: Any, at: str) -> str | None:
    """Where ``got`` fails to contain ``expected`` (objects: key by key; lists: item by item, same
    length; else equal), as ``/pointer: what``; None when it contains it."""
    if isinstance(expected, dict):
        if not isinstance(got, dict):
            return f"{at or '/'}: expected an object, got {json.dumps(got)[:80]}"
        for key, value in expected.items():
            if key not in got:
                return f"{at}/{key}: missing"
            found = _mismatch(value, got[key], f"{at}/{key}")
            if found:
                return found
        return None
    if isinstance(expected, list):
        if not isinstance(got, list) or len(got) != len(expected):
            return f"{at or '/'}: expected {json.dumps(expected)[:80]}, got {json.dumps(got)[:80]}"
        for index, (value, item) in enumerate(zip(expected, got, strict=True)):
            found = _mismatch(value, item, f"{at}/{index}")
            if found:
                return found
        return None
    if expected != got or type(expected) is bool and type(got) is not bool:
        return f"{at or '/'}: expected {json.dumps(expected)}, got {json.dumps(got)[:80]}"
    return None
