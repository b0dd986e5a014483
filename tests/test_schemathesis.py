"""schemathesis against the gateway's own OpenAPI document (notebook endpoints and kernel API).

Requests generated from `/_fngw/openapi.json`, sent to a real gunicorn: every answer must have a
status the document lists for that operation, a body that matches its schema and a documented
content type, and no 5xx at all: these cells cannot fail and no seed is configured, so a 5xx could
only be the gateway's own fault.
"""

from __future__ import annotations

import pytest
import schemathesis
from gateway import REPO, Gateway, gateway_env
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture(scope="module")
def fuzzed_gateway():
    gateway = Gateway(env=gateway_env(FNGW_MANIFEST=str(REPO / "tests" / "fuzz" / "fngw.yaml")))
    try:
        gateway.wait_ready("/_fngw/ready", timeout=90)
        yield gateway
    finally:
        gateway.stop()


@pytest.fixture(scope="module")
def openapi(fuzzed_gateway):
    return schemathesis.openapi.from_url(f"http://127.0.0.1:{fuzzed_gateway.port}/_fngw/openapi.json")


def test_every_operation_answers_as_documented(openapi):
    # schemathesis' pytest plugin does not run under this pytest; its strategies do.
    operations = [result.ok() for result in openapi.get_all_operations()]
    assert len(operations) >= 15
    calls: list[str] = []
    for operation in operations:

        @given(operation.as_strategy())
        @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def answers_as_documented(case):
            case.call_and_validate(checks=CHECKS, timeout=60)
            calls.append(case.operation.label)

        answers_as_documented()
    assert len(calls) > 10 * len(operations), len(calls)  # it really sent requests, many per operation


def test_the_document_describes_the_kernel_api(fuzzed_gateway):
    status, document = fuzzed_gateway.get_json("/_fngw/openapi.json")
    assert status == 200
    assert {"/api/kernels", "/api/kernels/{kernel_id}", "/api/sessions/{session_id}", "/items/{name}"} <= set(
        document["paths"]
    )
