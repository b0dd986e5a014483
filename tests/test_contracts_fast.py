"""Typed endpoints through Falcon's TestClient and in-memory kernels: coercion, every 422
location, 415, defaults, REQUEST["params"], response checking, and what `fngw validate` says."""

from __future__ import annotations

import json

import falcon.testing
import pytest
from conftest import REPO
from fakes import FakePools

from fngw.deployment import check_deployment
from fngw.server.app import create_app

TYPED = REPO / "tests" / "typed" / "fngw.yaml"
ORDER = {"sku": "W-1", "qty": 2}
CLIENT = {"X-Client": "ci"}


@pytest.fixture(scope="module")
def deployment():
    checked = check_deployment(TYPED, offline=True)
    assert checked.deployment is not None, checked.problems
    return checked.deployment


@pytest.fixture(scope="module")
def pools(deployment):
    return FakePools(deployment.plan)


@pytest.fixture(scope="module")
def client(deployment, pools):
    return falcon.testing.TestClient(create_app(deployment.manifest, deployment.plan, pools))


def executions(pools) -> int:
    return sum(pool.executions for pool in pools.pools.values())


def test_a_valid_request_reaches_the_cell_with_typed_params(client):
    result = client.simulate_post(
        "/orders/eu", params={"dry_run": "yes", "tag": ["a", "b"]}, json=ORDER, headers=CLIENT
    )
    assert result.status_code == 201, result.text
    assert result.json == {"sku": "W-1", "qty": 2, "region": "eu", "dry_run": True}


def test_query_values_are_converted_and_defaults_filled(client):
    result = client.simulate_get("/orders/us", query_string="ratio=2.5&tag=x&tag=y&since=2026-12-01")
    assert result.status_code == 200, result.text
    assert result.json == {
        "path": {"region": "us"},
        "query": {"limit": 10, "ratio": 2.5, "tag": ["x", "y"], "since": "2026-12-01"},
        "headers": {},
    }  # no body: the endpoint declares none


def test_every_error_is_listed_with_its_location_and_no_kernel_runs(client, pools):
    before = executions(pools)
    result = client.simulate_post(
        "/orders/asia",
        query_string="dry_run=maybe",
        json={"sku": "w1", "qty": 0, "extra": 1},
        headers={"X-Client": "c"},
    )
    assert result.status_code == 422
    assert result.json["reason"] == "Unprocessable Entity"  # Falcon's phrase (RFC 9110 says "Content")
    where = {(e["in"], e["pointer"]) for e in result.json["errors"]}
    assert where == {
        ("path", "/region"),
        ("query", "/dry_run"),
        ("headers", "/X-Client"),
        ("body", "/sku"),
        ("body", "/qty"),
        ("body", "/extra"),  # additionalProperties: the unexpected property itself
    }
    assert all(e["message"] for e in result.json["errors"])
    assert executions(pools) == before


def test_missing_required_parts_are_422(client):
    result = client.simulate_post("/orders/eu", json={"qty": 1})
    assert result.status_code == 422
    assert {(e["in"], e["pointer"]) for e in result.json["errors"]} == {("headers", "/X-Client"), ("body", "/sku")}
    empty = client.simulate_post("/orders/eu", headers=CLIENT)
    assert [(e["in"], e["message"]) for e in empty.json["errors"]] == [("body", "a request body is required")]


def test_a_body_of_another_media_type_is_415(client, pools):
    before = executions(pools)
    result = client.simulate_post("/orders/eu", body="sku=W-1", headers={**CLIENT, "Content-Type": "text/plain"})
    assert result.status_code == 415
    assert result.json["accepted"] == ["application/json"]
    assert "text/plain" in result.json["message"]
    assert executions(pools) == before


def test_header_names_are_case_insensitive(client):
    result = client.simulate_post("/orders/eu", json=ORDER, headers={"x-client": "ci"})
    assert result.status_code == 201, result.text


def test_form_fields_are_converted_by_the_body_schema(client):
    result = client.simulate_post(
        "/form",
        body="count=3&flags=true&flags=off",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert result.status_code == 200, result.text
    assert result.json == {"count": 3, "flags": [True, False]}
    bad = client.simulate_post("/form", body="count=x", headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert bad.status_code == 422 and bad.json["errors"][0]["pointer"] == "/count"


def test_a_response_that_breaks_its_schema_is_500_naming_it(client):
    result = client.simulate_get("/broken")
    assert result.status_code == 500
    assert "'id' is a required property" in result.json["message"]


def test_declared_statuses_pass_response_checks(client):
    out_of_stock = client.simulate_post("/orders/us", json={"sku": "W-2", "qty": 1}, headers=CLIENT)
    assert out_of_stock.status_code == 409, out_of_stock.text


def test_untyped_endpoints_are_untouched(client):
    assert client.simulate_get("/plain").text == "untyped\n"


def test_rejections_are_counted(client):
    client.simulate_post("/orders/asia", json=ORDER, headers=CLIENT)
    metrics = client.simulate_get("/_fngw/metrics").text
    assert 'fngw_request_rejections_total{method="POST",reason="schema",route="/orders/:region"}' in metrics


def test_the_openapi_document_carries_every_schema_and_validates(client):
    from openapi_spec_validator import validate

    doc = client.simulate_get("/_fngw/openapi.json").json
    validate(doc)
    post = doc["paths"]["/orders/{region}"]["post"]
    parameters = {(p["in"], p["name"]): p for p in post["parameters"]}
    assert parameters[("path", "region")]["schema"] == {"type": "string", "enum": ["eu", "us"]}
    assert parameters[("query", "tag")]["explode"] is True
    assert parameters[("header", "X-Client")]["required"] is True
    body = post["requestBody"]["content"]["application/json"]
    assert body["schema"]["required"] == ["sku", "qty"]
    assert body["schema"]["properties"]["sku"] == {"type": "string", "pattern": "^[A-Z]-[0-9]+$"}  # $refs inlined
    assert body["examples"]["two widgets"]["value"] == ORDER
    created = post["responses"]["201"]["content"]["application/json"]
    assert created["schema"]["properties"]["sku"]["pattern"] == "^[A-Z]-[0-9]+$"  # a YAML file's $ref into JSON
    assert {"201", "409", "415", "422"} <= set(post["responses"])
    assert "errors" in doc["components"]["schemas"]["Error"]["properties"]
    untyped = doc["paths"]["/plain"]["get"]
    assert "422" not in untyped["responses"] and "200" in untyped["responses"]


def test_the_swagger_document_says_what_2_0_can(client):
    # Its paths keep Kernel Gateway's ":name" form, which Swagger 2.0 validators refuse beside
    # declared path parameters: tools should read /_fngw/openapi.json (docs/compatibility.md).
    doc = client.simulate_get("/_api/spec/swagger.json").json
    post = doc["paths"]["/orders/:region"]["post"]
    by_name = {p["name"]: p for p in post["parameters"]}
    assert by_name["region"] == {
        "name": "region",
        "in": "path",
        "required": True,
        "type": "string",
        "enum": ["eu", "us"],
    }
    assert by_name["tag"]["collectionFormat"] == "multi"
    assert by_name["body"]["schema"]["required"] == ["sku", "qty"]
    assert doc["paths"]["/plain"] == {"get": {"responses": {"200": {"description": "Success"}}}}


def test_the_docs_page_and_its_assets_are_served_from_the_package(client):
    page = client.simulate_get("/_fngw/docs")
    assert page.status_code == 200 and page.headers["content-type"] == "text/html; charset=utf-8"
    assert '"/_fngw/openapi.json"' in page.text and "/_fngw/docs/assets/swagger-ui-bundle.js" in page.text
    script = client.simulate_get("/_fngw/docs/assets/swagger-ui-bundle.js")
    assert script.status_code == 200 and "SwaggerUIBundle" in script.text[:2000]
    assert client.simulate_get("/_fngw/docs/assets/index.html").status_code == 404  # only what the page loads


# --- api: openapi (a notebook that carries its OpenAPI 3 or Swagger 2.0 document) ----------------


def test_openapi_notebooks_route_by_operation_id_with_lowercase_verbs(client):
    found = client.simulate_get("/bar/scotches/lagavulin")
    assert (found.status_code, found.json) == (200, {"region": "islay", "age": 16})
    assert client.simulate_get("/bar/scotches/nope").status_code == 404  # ResponseInfo applies
    stored = client.simulate_put("/bar/scotches/ardbeg", json={"region": "islay", "age": None})
    assert (stored.status_code, stored.text) == (201, "stored\n")  # nullable (3.0) allows null


def test_openapi_notebooks_enforce_the_document_schemas(client):
    result = client.simulate_put("/bar/scotches/x", json={"age": 0}, query_string="")
    assert result.status_code == 422
    where = {(e["in"], e["pointer"]) for e in result.json["errors"]}
    assert where == {("path", "/name"), ("body", "/region"), ("body", "/age")}  # exclusiveMinimum: true (3.0)
    proof = client.simulate_get("/bar/scotches/lagavulin", query_string="proof=12")
    assert proof.status_code == 422 and proof.json["errors"][0]["pointer"] == "/proof"


def test_swagger_2_notebooks_in_kernel_gateways_form(client):
    result = client.simulate_post("/legacy/greet", json={"who": "kg"}, query_string="loud=true")
    assert (result.status_code, result.text) == (200, "HELLO KG\n")
    assert client.simulate_post("/legacy/greet", json={"who": None}).status_code == 200  # x-nullable
    missing = client.simulate_post("/legacy/greet", json={})
    assert missing.status_code == 422 and missing.json["errors"][0]["pointer"] == "/who"
    # Only path parameters are path segments (Kernel Gateway registered /legacy/greet/:body/:loud)
    assert client.simulate_post("/legacy/greet/x/y", json={"who": "kg"}).status_code == 404


def test_the_openapi_document_describes_openapi_notebooks(client):
    doc = client.simulate_get("/_fngw/openapi.json").json
    get = doc["paths"]["/bar/scotches/{name}"]["get"]
    assert get["description"] == "One scotch"
    schema = get["responses"]["200"]["content"]["application/json"]["schema"]
    assert schema["properties"]["age"] == {"type": ["integer", "null"], "exclusiveMinimum": 0}


def write_notebook(folder, cells):
    import nbformat
    from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

    made = [new_markdown_cell(c[3:]) if c.startswith("md:") else new_code_cell(c) for c in cells]
    meta = {"kernelspec": {"name": "python3", "display_name": "Python 3"}, "language_info": {"name": "python"}}
    nbformat.write(new_notebook(cells=made, metadata=meta), folder / "api.ipynb")
    (folder / "fngw.yaml").write_text("version: 1\nnotebooks:\n  api: {path: api.ipynb, api: openapi}\n")
    return folder / "fngw.yaml"


def test_validate_reports_operations_without_cells_and_cells_without_operations(tmp_path):
    paths = {
        "/a": {"get": {"operationId": "getA", "responses": {}}},
        "/b": {"post": {"operationId": "postB", "responses": {}}},
        "/c": {"get": {"responses": {}}},
    }
    document = json.dumps({"openapi": "3.1.0", "info": {"title": "t", "version": "1"}, "paths": paths})
    manifest = write_notebook(
        tmp_path, [f"md:```json\n{document}\n```", "# getA\nprint(1)", "# operationId: nope\nprint(2)"]
    )
    problems = check_deployment(manifest, offline=True).problems
    messages = {(p.file, p.path, p.rule, p.message) for p in problems}
    notebook = str(tmp_path / "api.ipynb")  # located in the notebook, at the cell's source
    without = "operation 'postB' (POST /b) has no cell"
    assert (notebook, "cells[0].source", "operation-without-cell", without) in messages
    unknown = "no operation 'nope' in the API document (it has: getA, postB)"
    assert (notebook, "cells[2].source", "operation-unknown", unknown) in messages
    missing = "GET /c has no operationId: no cell can be annotated for it"
    assert (notebook, "cells[0].source", "operation-id-missing", missing) in messages


def test_validate_reports_a_notebook_without_a_document(tmp_path):
    manifest = write_notebook(tmp_path, ["# GET /a\nprint(1)"])
    rules = {p.rule for p in check_deployment(manifest, offline=True).problems}
    assert "api-document" in rules


def app_for(folder, manifest_text, monkeypatch):
    write_notebook(folder, ["# GET /a\nprint(1)"])
    (folder / "fngw.yaml").write_text(manifest_text)
    monkeypatch.setenv("FNGWTEST_DOCS_TOKEN", "s3cret")
    checked = check_deployment(folder / "fngw.yaml", offline=True)
    assert checked.deployment is not None, checked.problems
    return falcon.testing.TestClient(
        create_app(checked.deployment.manifest, checked.deployment.plan, FakePools(checked.deployment.plan))
    )


def test_the_docs_page_is_under_auth_default_and_can_be_switched_off(tmp_path, monkeypatch):
    secured = app_for(
        tmp_path,
        "version: 1\nauth: {tokens: {docs: {env: FNGWTEST_DOCS_TOKEN}}, default: [docs]}\n"
        "notebooks:\n  api: {path: api.ipynb}\n",
        monkeypatch,
    )
    assert secured.simulate_get("/_fngw/docs").status_code == 401
    assert secured.simulate_get("/_fngw/docs", query_string="token=s3cret").status_code == 200
    assert secured.simulate_get("/_fngw/docs/assets/swagger-ui.css").status_code == 200  # Swagger UI's own files
    off = app_for(tmp_path, "version: 1\nserver: {docs: false}\nnotebooks:\n  api: {path: api.ipynb}\n", monkeypatch)
    assert off.simulate_get("/_fngw/docs").status_code == 404


def test_openapi_parameters_are_converted_through_their_refs_and_styles(client):
    # proof: an inline integer schema (a $ref into the document); limit: a $ref to
    # components/parameters; tags: style form, explode false (comma-separated)
    ok = client.simulate_get("/bar/scotches/lagavulin", query_string="proof=45&limit=3&tags=1,2")
    assert ok.status_code == 200, ok.text
    bad = client.simulate_get("/bar/scotches/lagavulin", query_string="limit=9&tags=1,x")
    assert {(e["in"], e["pointer"]) for e in bad.json["errors"]} == {("query", "/limit"), ("query", "/tags/1")}


def test_a_broken_api_document_is_reported_with_its_parse_error(tmp_path):
    manifest = write_notebook(tmp_path, ['md:```json\n{"openapi": "3.1.0", "paths": {\n```', "# getA\nprint(1)"])
    problems = [p for p in check_deployment(manifest, offline=True).problems if p.rule == "api-document"]
    assert any("does not parse" in p.message for p in problems), problems


def test_a_stream_buffer_below_its_floor_is_a_manifest_error(tmp_path):
    manifest = write_notebook(tmp_path, ["# GET /a\nprint(1)"])
    manifest.write_text(
        "version: 1\nnotebooks:\n  api:\n    path: api.ipynb\n"
        '    endpoints:\n      "GET /a": {stream: {buffer: 4KiB}}\n'
    )
    rules = {p.rule for p in check_deployment(manifest, offline=True).problems}
    assert "stream-buffer-too-small" in rules
