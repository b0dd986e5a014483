"""Every domain error becomes its documented HTTP answer, in the one JSON shape (fast tier)."""

from __future__ import annotations

import falcon
import falcon.testing
import pytest

from fngw.contracts import RequestRejected, ResponseBroken, SchemaUnusable, UnsupportedMediaType
from fngw.endpoints.errors import CellFailed, RequestInvalid, RequestTooLarge, ResponseInfoInvalid
from fngw.http import errors
from fngw.http.disconnect import ClientGone
from fngw.jobs import IdempotencyConflict, JobNotFinished, JobNotFound, JobQueueFull, NotCancellable, StoreUnavailable
from fngw.kernel_api.errors import HostedElsewhere, PeerUnavailable, RegistryUnavailable
from fngw.kernel_api.registry import Invalid, LaunchTimeout, NotFound, ResourceLimit, ShuttingDown, StartFailed
from fngw.kernels import (
    ExecutionTimeout,
    KernelDied,
    KernelNoReply,
    KernelSeedError,
    NoIdleKernel,
    OutputLimitExceeded,
    PoolClosed,
    PoolUnavailable,
    QueueFull,
    QueueTimeout,
)
from fngw.server.error_map import ERROR_MAP, install_error_map

CASES = [
    (RequestInvalid("the body is not valid JSON"), 400, {}),
    (RequestTooLarge("too many parts"), 413, {}),
    (
        RequestRejected([{"in": "query", "pointer": "/n", "message": "'x' is not of type 'integer'"}]),
        422,
        {"errors": [{"in": "query", "pointer": "/n", "message": "'x' is not of type 'integer'"}]},
    ),
    (UnsupportedMediaType("text/plain", ("application/json",)), 415, {"accepted": ["application/json"]}),
    (ResponseBroken("body/id: 'id' is a required property"), 500, {}),
    (SchemaUnusable("the endpoint's schema refers to itself without end"), 500, {}),
    (ResponseInfoInvalid("must print JSON"), 500, {}),
    (CellFailed("the cell raised ValueError: x", "ValueError", "x"), 500, {"ename": "ValueError", "evalue": "x"}),
    (QueueFull("pool p: all busy", "p"), 503, {"pool": "p"}),
    (NoIdleKernel("pool p: no idle kernel", "p"), 503, {"pool": "p"}),
    (QueueTimeout("pool p: none free", "p"), 503, {"pool": "p"}),
    (PoolUnavailable("pool p: none", None, "p"), 503, {"pool": "p"}),
    (PoolClosed("pool p: closing", "p"), 503, {"pool": "p"}),
    (ExecutionTimeout("too slow", 2.0), 504, {}),
    (OutputLimitExceeded("too much", 10), 502, {}),
    (KernelDied("gone"), 502, {}),
    (KernelNoReply("the kernel finished the request without sending its reply"), 502, {}),
    (ClientGone(), 499, {}),
    (NotFound("Kernel does not exist: k"), 404, {}),
    (Invalid("env must be an object"), 400, {}),
    (ResourceLimit("x"), 403, {}),
    (LaunchTimeout("did not start within 1s"), 504, {}),
    (ShuttingDown("shutting down"), 503, {}),
    (RegistryUnavailable("the kernel registry (Redis at redis://r:6379/0) is unreachable: refused"), 503, {}),
    (PeerUnavailable("the instance at http://10.0.0.2:8080 that runs the kernel cannot be reached"), 503, {}),
    (HostedElsewhere("k", "other", ""), 503, {}),
    (StartFailed("seed failed", KernelSeedError("nb", 2, "NameError", "y")), 500, {"ename": "NameError"}),
    (JobQueueFull("1000 jobs are waiting"), 503, {}),
    (StoreUnavailable("Redis at redis://r:6379/0: refused"), 503, {}),
    (IdempotencyConflict("this Idempotency-Key was used for a different request"), 422, {}),
    (JobNotFound("no job x"), 404, {}),
    (NotCancellable("the job has finished: succeeded", "succeeded"), 409, {"job_status": "succeeded"}),
    (JobNotFinished("the job is running", "running", 1), 409, {"job_status": "running"}),
]


@pytest.fixture
def client():
    raised: list[Exception] = []

    class Raises:
        def on_get(self, req, resp):
            raise raised[0]

    app = falcon.App()
    errors.install(app)
    install_error_map(app)
    app.add_route("/x", Raises())
    test_client = falcon.testing.TestClient(app)
    test_client.raised = raised
    return test_client


@pytest.mark.parametrize(("error", "status", "extra"), CASES, ids=[type(c[0]).__name__ for c in CASES])
def test_domain_errors_become_their_documented_status(client, error, status, extra):
    client.raised[:] = [error]
    result = client.simulate_get("/x")
    assert result.status_code == status
    body = result.json
    reason = "Client Closed Request" if status == 499 else falcon.code_to_http_status(status).split(" ", 1)[1]
    assert body["reason"] == reason and body["message"]
    assert extra.items() <= body.items()
    if status == 503:
        assert result.headers["retry-after"] in ("1", "5")


def test_every_mapped_error_has_a_case():
    assert {cls for cls, _ in ERROR_MAP} <= {type(error) for error, _, _ in CASES} | {type(KernelDied("")).__mro__[1]}
