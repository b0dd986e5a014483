"""Endpoint semantics through Falcon's TestClient and in-memory kernels (tests/fakes.py): request
parsing, routing, ResponseInfo, rendering, errors, auth and CORS, in well under a second each.
The same notebook and manifest as tests/test_endpoints.py, which keeps what only a real gunicorn
and real kernels show (timeouts, deaths, queues, rich output, chunked bodies, lifecycle)."""

from __future__ import annotations

import json

import falcon.testing
import pytest
from conftest import REPO
from fakes import FakePools

from fngw.deployment import check_deployment
from fngw.server.app import create_app

OPS, PARTNER = "ops-secret", "partner-secret"


@pytest.fixture(scope="module")
def client():
    environ = {"FNGWTEST_OPS_TOKEN": OPS, "FNGWTEST_PARTNER_TOKEN": PARTNER}
    with pytest.MonkeyPatch.context() as patch:
        for name, value in environ.items():
            patch.setenv(name, value)
        deployment = check_deployment(REPO / "tests" / "notebooks" / "fngw.yaml", offline=True).deployment
        assert deployment is not None
        app = create_app(deployment.manifest, deployment.plan, FakePools(deployment.plan))
        yield falcon.testing.TestClient(app)


def text(client, path, **kw):
    result = client.simulate_get(path, **kw)
    return result.status_code, result.text


def test_hello_with_path_and_query_parameters(client):
    assert text(client, "/hello") == (200, "hello world\n")
    assert text(client, "/hello/Rick") == (200, "hello Rick\n")
    assert text(client, "/hello/person", params={"person": "Maggie"}) == (200, "hello Maggie\n")
    assert text(client, "/hello/persons", query_string="person=Glenn&person=Carol") == (200, "hello Glenn, Carol\n")


def test_encoded_slashes_and_unicode_stay_in_their_parameter(client):
    assert text(client, "/hello/a%2Fb") == (200, "hello a/b\n")
    assert text(client, "/hello/caf%C3%A9") == (200, "hello café\n")
    assert client.simulate_get("/hello/%FF").status_code == 400


def test_put_then_get_sees_state(client):
    assert client.simulate_put("/message", body="hola {}").status_code == 200
    try:
        assert text(client, "/message") == (200, "hola {}\n")
    finally:
        client.simulate_put("/message", body="hello {}")


def test_post_json_echo_and_delete_with_path_parameter(client):
    crew = ["Rick", "Maggie", "Glenn", "Carol", "Daryl"]
    assert client.simulate_post("/people", json=crew).json == crew
    assert client.simulate_delete("/people/2").json == ["Rick", "Maggie", "Carol", "Daryl"]


def test_cell_error_is_500_json_with_name_and_value(client):
    result = client.simulate_get("/error")
    assert result.status_code == 500 and result.headers["content-type"] == "application/json"
    assert result.json["ename"] == "SyntaxError" and "traceback" not in result.json


def test_stderr_is_not_in_the_body_and_text_declares_utf8(client):
    result = client.simulate_get("/stderr")
    assert result.text == "I am text on stdout\n"
    assert result.headers["content-type"] == "text/plain; charset=utf-8"


def test_unannotated_method_is_405_with_allow_and_unknown_path_404(client):
    result = client.simulate_delete("/message")
    assert result.status_code == 405 and result.headers["allow"] == "GET, HEAD, PUT, OPTIONS"
    assert client.simulate_get("/not/an/endpoint").json["reason"] == "Not Found"


@pytest.mark.parametrize("content_type", ["text/plain", "application/json", "application/atom+xml", "foo"])
def test_cells_see_request_headers(client, content_type):
    assert text(client, "/content-type", headers={"Content-Type": content_type}) == (200, content_type + "\n")


def test_request_data_is_never_code(client):
    nasty = "'''\"\"\"\\'); import os; os._exit(3) #${x}`id`@{y}\u2028\x00"
    result = client.simulate_post("/echo", json={"v": nasty})
    assert result.status_code == 200 and json.loads(result.text)["body"] == {"v": nasty}


def test_response_info_sets_content_type_status_and_headers(client):
    result = client.simulate_get("/json")
    assert result.status_code == 200 and result.headers["content-type"] == "application/json"
    assert client.simulate_get("/nocontent").status_code == 204
    etag = client.simulate_get("/etag")
    assert etag.headers["etag"] and etag.status_code in (200, 201, 202)
    assert client.simulate_get("/badinfo").status_code == 500


@pytest.mark.parametrize(
    ("body", "headers", "status"),
    [
        (b"{nope", {"Content-Type": "application/json"}, 400),
        (b"\xff\xfe", {"Content-Type": "text/plain"}, 400),
        (b"x" * (64 * 1024 + 1), {"Content-Type": "text/plain"}, 413),
    ],
)
def test_bad_bodies(client, body, headers, status):
    result = client.simulate_post("/echo", body=body, headers=headers)
    assert result.status_code == status and result.json["message"]


@pytest.mark.parametrize(
    ("path", "headers", "status"),
    [
        ("/secured/hello", {}, 401),
        ("/secured/hello", {"Authorization": "Bearer wrong"}, 401),
        ("/secured/hello", {"Authorization": f"Bearer {PARTNER}"}, 200),
        ("/secured/message", {"Authorization": f"Bearer {PARTNER}"}, 403),
        ("/secured/message", {"Authorization": f"token {OPS}"}, 200),
        ("/secured/json", {}, 200),
    ],
)
def test_auth_matrix(client, path, headers, status):
    assert client.simulate_get(path, headers=headers).status_code == status


def test_cors_on_success_errors_and_preflight(client):
    origin = {"Origin": "https://app.example.com"}
    assert client.simulate_get("/hello", headers=origin).headers["access-control-allow-origin"] == origin["Origin"]
    assert client.simulate_get("/nowhere", headers=origin).headers["access-control-allow-origin"] == origin["Origin"]
    preflight = client.simulate_options(
        "/hello", headers={**origin, "Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "X"}
    )
    assert preflight.status_code == 204 and preflight.headers["access-control-max-age"] == "600"


def test_source_and_public_are_404_unless_enabled(client):
    assert client.simulate_get("/secured/_api/source").status_code == 404
    assert client.simulate_get("/secured/public/index.html").status_code == 404


def test_source_download_and_public_files_when_enabled(client):
    source = client.simulate_get("/_api/source")
    assert source.status_code == 200 and {"cells", "metadata", "nbformat", "nbformat_minor"} <= set(source.json)
    page = client.simulate_get("/public/index.html")
    assert (page.status_code, page.headers["content-type"]) == (200, "text/html")


def test_public_files_are_cacheable_and_ranged(client):
    page = client.simulate_get("/public/index.html")
    again = client.simulate_get("/public/index.html", headers={"If-None-Match": page.headers["etag"]})
    assert again.status_code == 304 and again.content == b""
    part = client.simulate_get("/public/index.html", headers={"Range": "bytes=0-3"})
    assert (part.status_code, part.content) == (206, page.content[:4])
    assert client.simulate_head("/public/index.html").headers["content-length"] == str(len(page.content))


@pytest.mark.parametrize("path", ["/public/../outside.txt", "/public/%2e%2e/outside.txt", "/public/", "/public/nope"])
def test_public_files_never_escape_their_folder(client, path):
    result = client.simulate_get(path)
    assert result.status_code == 404 and b"secret" not in result.content
    assert result.json["reason"] == "Not Found"


def test_a_symbolic_link_out_of_the_public_folder_is_not_followed(client, tmp_path):
    link = REPO / "tests" / "notebooks" / "public" / "escape.txt"
    link.symlink_to(REPO / "tests" / "notebooks" / "outside.txt")
    try:
        assert client.simulate_get("/public/escape.txt").status_code == 404
    finally:
        link.unlink()


@pytest.mark.parametrize(
    ("accept", "chosen"),
    [
        ("text/csv, text/html", "text/csv"),  # equal preference: the type named first
        ("text/html, text/csv", "text/html"),
        ("text/html;q=0.5, text/csv", "text/csv"),
        ("image/png;q=0, text/html;q=0.1", "text/html"),
        ("*/*", None),  # a wildcard never turns a display into the body
        ("text/*", None),
        ("image/png;q=0", None),
        ("text/plain, application/json", None),  # text/plain is what the cell printed; json not displayed
    ],
)
def test_a_display_becomes_the_body_only_when_the_client_names_its_type(accept, chosen):
    import falcon.testing as testing

    from fngw.endpoints.response import _preferred

    outputs = [
        {"data": {"text/plain": "t", "text/html": "<b>t</b>"}},
        {"data": {"text/csv": "a,b", "image/png": "iVBO"}},
    ]
    assert _preferred(testing.create_req(headers={"Accept": accept}), outputs) == chosen
