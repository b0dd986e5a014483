"""Property-based tests (hypothesis): whatever the input, the manifest loader, the notebook parser
and request parsing answer with their documented results and never raise anything else."""

from __future__ import annotations

import ast
import json
import string

import falcon
import falcon.testing
import nbformat
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from fngw.endpoints.errors import RequestInvalid, RequestTooLarge
from fngw.endpoints.languages import request_assignment
from fngw.endpoints.request import request_document
from fngw.manifest import load_manifest
from fngw.notebook import parse_notebook

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

# --- manifest loader ------------------------------------------------------------------------------

KEYS = ["version", "server", "auth", "defaults", "notebooks", "kernel_api", "pool", "size", "timeout", "path",
        "mount", "tokens", "env", "max_body", "base_url", "cors", "endpoints", "GET /x", "a", "<<", "yes"]  # fmt: skip
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(["1s", "10MB", "-1", "nb.ipynb", "/x", "public", "", "on", "0x10", "1:30", "~"]),
    st.text(max_size=20),
)
documents = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=8), inner, max_size=5)
    ),
    max_leaves=25,
)


def _yaml(value) -> str:
    return json.dumps(value)  # JSON is YAML: structure the loader must judge, not parse errors only


def _check_result(result) -> None:
    assert (result.manifest is None) == any(p.severity == "error" for p in result.problems)
    for problem in result.problems:
        assert problem.line >= 1 and problem.col >= 1 and problem.path.startswith("$") and problem.rule


@SETTINGS
@given(documents)
@example(None)  # found by hypothesis: a `null` document was "valid" with no manifest
def test_any_structure_is_a_manifest_or_located_problems(tmp_path, document):
    path = tmp_path / "fngw.yaml"
    path.write_text(_yaml(document), encoding="utf-8")
    _check_result(load_manifest(path))


@SETTINGS
@given(st.text(alphabet=string.printable + "ä€\t", max_size=300))
@example("version: 1\nnotebooks:\x0c {}\n")  # found by hypothesis: a form feed crashed the loader
def test_any_text_is_a_manifest_or_located_problems(tmp_path, text):
    path = tmp_path / "fngw.yaml"
    path.write_text(text, encoding="utf-8")
    _check_result(load_manifest(path))


@SETTINGS
@given(st.binary(max_size=200))
def test_any_bytes_are_a_manifest_or_located_problems(tmp_path, data):
    path = tmp_path / "fngw.yaml"
    path.write_bytes(data)
    _check_result(load_manifest(path))


# --- notebook parser ------------------------------------------------------------------------------

first_lines = st.one_of(
    st.sampled_from(
        [
            "# GET /x",
            "# POST /x/:id",
            "#GET /x",
            "# get /x",
            "# ResponseInfo GET /x",
            "// GET /y",
            "# GET /x/:a/:a",
            "# PUT",
            "# GET x",
            "# DELETE /:a/:b",
            "# GET /x?y=1",
        ]
    ),  # fmt: skip
    st.text(max_size=30),
)
cells = st.tuples(st.booleans(), first_lines, st.text(max_size=40))


@SETTINGS
@given(st.lists(cells, max_size=8), st.sampled_from(["python", "scala", "R", "bash", "unknown", ""]))
def test_any_notebook_parses_into_well_formed_endpoints(markdown_and_cells, language):
    nb = new_notebook(metadata={"language_info": {"name": language}})
    nb.cells = [
        new_markdown_cell(first) if markdown else new_code_cell(first + "\n" + rest)
        for markdown, first, rest in markdown_and_cells
    ]
    parsed = parse_notebook(nbformat.from_dict(nb))
    code_cells = sum(1 for markdown, _, _ in markdown_and_cells if not markdown)
    assert len(parsed.endpoints) <= code_cells
    for endpoint in parsed.endpoints:
        assert endpoint.method.isupper() and endpoint.path.startswith("/")
        assert endpoint.cell_indices and all(0 <= i < len(nb.cells) for i in endpoint.cell_indices)
    assert len({(e.method, e.path) for e in parsed.endpoints}) == len(parsed.endpoints)


# --- request parsing ------------------------------------------------------------------------------

content_types = st.sampled_from(
    [
        "application/json",
        "application/json; charset=utf-8",
        "application/vnd.x+json",
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=zz",
        "multipart/form-data",
        "application/octet-stream",
        "",
        "text/csv; charset=latin-1",
    ]  # fmt: skip
)


@SETTINGS
@given(
    st.binary(max_size=300),
    content_types,
    st.text(max_size=30),
    st.dictionaries(st.text(max_size=5), st.text(max_size=10), max_size=3),
)
def test_any_body_is_a_request_document_or_a_400(body, content_type, query, params):
    env = falcon.testing.create_environ(
        method="POST", path="/x", query_string=query.lstrip("?").encode("utf-8", "replace").decode("latin-1"),
        headers={"Content-Type": content_type} if content_type else {}, body=body,
    )  # fmt: skip
    req = falcon.Request(env)
    try:
        document = request_document(req, body, params)
    except (RequestInvalid, RequestTooLarge):  # answered 400 and 413 (fngw.server.error_map)
        return
    text = json.dumps(document)  # always serialisable: it becomes REQUEST
    assert json.loads(text)["path"] == params


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=10,
)


@SETTINGS
@given(json_values)
def test_the_python_request_literal_is_the_request_and_nothing_else(value):
    request_json = json.dumps({"body": value})
    statement = request_assignment("python", request_json)
    tree = ast.parse(statement)
    (assign,) = tree.body
    assert isinstance(assign, ast.Assign) and [t.id for t in assign.targets] == ["REQUEST"]
    assert ast.literal_eval(assign.value) == request_json  # a plain literal: no call, no f-string
