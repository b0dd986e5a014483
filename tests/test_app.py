"""The Falcon application: one JSON error shape, health without kernels, body limits."""

from __future__ import annotations

import logging

import falcon
import falcon.testing
import pytest
from conftest import REPO

from fngw.manifest import load_manifest
from fngw.server.app import create_app


@pytest.fixture
def app():
    return create_app(load_manifest(REPO / "config" / "fngw.yaml").manifest)


@pytest.fixture
def client(app):
    return falcon.testing.TestClient(app)


def test_health(client):
    result = client.simulate_get("/_fngw/health")
    assert result.status_code == 200
    assert result.json == {"status": "ok"}


def test_unknown_route_is_json_404(client):
    result = client.simulate_get("/nowhere", headers={"Accept": "text/html"})
    assert result.status_code == 404
    assert result.headers["content-type"] == "application/json"
    assert result.json == {"reason": "Not Found", "message": "no route matches /nowhere"}


def test_wrong_method_is_json_405_naming_the_allowed_ones(client):
    result = client.simulate_delete("/_fngw/health")
    assert result.status_code == 405
    assert result.json["reason"] == "Method Not Allowed"
    assert "DELETE is not allowed on /_fngw/health" in result.json["message"]


def test_oversized_body_is_413_before_it_is_read(client):
    result = client.simulate_post("/_fngw/health", body=b"x" * (10_000_001))
    assert result.status_code == 413
    assert result.json["reason"] == "Content Too Large"
    assert "10000001" in result.json["message"]


def test_unexpected_errors_are_500_without_traceback(app):
    class Broken:
        def on_get(self, req, resp):
            raise RuntimeError("secret internals")

    app.falcon.add_route("/broken", Broken())
    result = falcon.testing.TestClient(app).simulate_get("/broken")
    assert result.status_code == 500
    assert result.json == {
        "reason": "Internal Server Error",
        "message": "the gateway failed to handle this request; see its log",
    }
    assert "secret" not in result.text


def test_a_gateway_error_is_logged_once_at_error_with_its_whole_traceback(app, caplog):
    class Broken:
        def on_get(self, req, resp):
            def deep():
                raise RuntimeError("secret internals")

            deep()

    app.falcon.add_route("/broken", Broken())
    with caplog.at_level(logging.DEBUG):
        falcon.testing.TestClient(app).simulate_get("/broken")
    with_traceback = [r for r in caplog.records if r.exc_info]
    assert len(with_traceback) == 1, [r.getMessage() for r in with_traceback]
    record = with_traceback[0]
    assert record.levelno == logging.ERROR
    text = logging.Formatter().formatException(record.exc_info)
    assert "in deep" in text and "RuntimeError: secret internals" in text
    # Nothing else about it at ERROR (a second, shorter line would say the same twice).
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == [record]


def test_base_url_prefixes_gateway_routes(notebook, manifest):
    notebook("nb.ipynb", ["# GET /x\nprint(1)"])
    loaded = load_manifest(manifest("version: 1\nserver: {base_url: /svc/}\nnotebooks:\n  nb: {path: nb.ipynb}\n"))
    client = falcon.testing.TestClient(create_app(loaded.manifest))
    assert client.simulate_get("/svc/_fngw/health").status_code == 200
    assert client.simulate_get("/_fngw/health").status_code == 404
