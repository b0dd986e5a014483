"""The notebook parser finds endpoints as Kernel Gateway's notebook-http does (with noted differences)."""

import pytest

from fngw.notebook import NotebookError, parse_notebook, read_notebook


def paths(parsed):
    return [e.annotation for e in parsed.endpoints]


def test_annotated_cells_are_endpoints_and_the_rest_seed(notebook):
    parsed = parse_notebook(
        notebook(
            "nb.ipynb",
            [
                "import json",
                "# GET /hello\nprint('hi')",
                "x = 1",
                "# POST /items\nprint(REQUEST)",
            ],
        )
    )
    assert paths(parsed) == ["GET /hello", "POST /items"]
    assert parsed.seed_cells == ("import json", "x = 1")
    assert parsed.seed_cell_indices == (0, 2)
    assert parsed.kernelspec == "python3"
    assert parsed.language == "python"


def test_all_five_verbs_and_only_upper_case(notebook):
    parsed = parse_notebook(
        notebook(
            "nb.ipynb",
            [
                "# GET /a",
                "# POST /a",
                "# PUT /a",
                "# DELETE /a",
                "# PATCH /a",
                "# get /b",
                "# HEAD /c",
            ],
        )
    )
    assert paths(parsed) == ["GET /a", "POST /a", "PUT /a", "DELETE /a", "PATCH /a"]
    assert len(parsed.seed_cells) == 2


def test_annotation_must_open_the_cell_with_whitespace_after_the_prefix(notebook):
    parsed = parse_notebook(notebook("nb.ipynb", ["  # GET /lead", "x=1\n# GET /notfirst", "#GET /nospace"]))
    assert paths(parsed) == []
    assert len(parsed.seed_cells) == 3


def test_same_annotation_concatenates_in_order_with_newlines(notebook):
    parsed = parse_notebook(notebook("nb.ipynb", ["# GET /multi\nx = 1", "y = 2", "# GET /multi\nprint(x)"]))
    (endpoint,) = parsed.endpoints
    assert endpoint.source == "# GET /multi\nx = 1\n# GET /multi\nprint(x)\n"
    assert endpoint.cell_indices == (0, 2)


def test_response_info_cells_attach_to_their_endpoint(notebook):
    parsed = parse_notebook(
        notebook(
            "nb.ipynb",
            [
                "# ResponseInfo GET /json\nprint('{}')",
                "# GET /json\nprint(1)",
                "# ResponseInfo POST /nowhere\nprint('{}')",
            ],
        )
    )
    (endpoint,) = parsed.endpoints
    assert endpoint.response_info == "# ResponseInfo GET /json\nprint('{}')\n"
    assert endpoint.response_info_cells == (0,)
    assert parsed.orphan_response_infos == ("POST /nowhere",)
    assert parsed.seed_cells == ()


def test_route_order_constants_then_deeper_parameters_then_notebook_order(notebook):
    parsed = parse_notebook(
        notebook(
            "nb.ipynb",
            [
                "# GET /:id",
                "# GET /t/:id",
                "# GET /test/:id",
                "# GET /t/t/:id",
                "# GET /test/test/:id",
                "# GET /test/test/test/:id",
                "# GET /test/test/test/test",
            ],
        )
    )
    assert paths(parsed) == [
        "GET /test/test/test/test",
        "GET /test/test/test/:id",
        "GET /t/t/:id",
        "GET /test/test/:id",
        "GET /t/:id",
        "GET /test/:id",
        "GET /:id",
    ]


def test_path_parameters(notebook):
    parsed = parse_notebook(notebook("nb.ipynb", ["# GET /hello/:first/:last"]))
    assert parsed.endpoints[0].params == ("first", "last")


def test_markdown_directly_above_is_the_description(notebook):
    parsed = parse_notebook(
        notebook(
            "nb.ipynb",
            [
                "md: Says hello.",
                "# GET /hello",
                "md: Not attached.",
                "x = 1",
                "# GET /bye",
            ],
        )
    )
    assert [e.description for e in parsed.endpoints] == ["Says hello.", None]


def test_paths_are_literal_and_trailing_text_is_ignored(notebook):
    parsed = parse_notebook(notebook("nb.ipynb", ["# GET /q?x=1", "# GET /ok  returns things"]))
    assert paths(parsed) == ["GET /ok"]
    (problem,) = parsed.problems
    assert (problem.cell_index, problem.rule) == (0, "annotation-path")


@pytest.mark.parametrize(
    ("annotation", "why"),
    [
        ("# GET hello", "must start with '/'"),
        ("# GET /a/", "must not end with '/'"),
        ("# GET /a//b", "empty segment"),
        ("# GET /a/:1x", "not a valid parameter"),
        ("# GET /a/:x/:x", "appears twice"),
    ],
)
def test_malformed_paths_are_problems_not_routes(notebook, annotation, why):
    parsed = parse_notebook(notebook("nb.ipynb", [annotation]))
    assert parsed.endpoints == ()
    assert why in parsed.problems[0].message


@pytest.mark.parametrize(
    ("language", "annotation"),
    [
        ("scala", "// GET /s"),
        ("sql", "-- GET /s"),
        ("python", "# GET /s"),
        ("R", "# GET /s"),
        ("julia", "# GET /s"),
    ],
)
def test_comment_prefix_follows_the_language(notebook, language, annotation):
    parsed = parse_notebook(notebook("nb.ipynb", [annotation], language=language))
    assert paths(parsed) == ["GET /s"]


def test_comment_prefixes_are_extensible(notebook):
    parsed = parse_notebook(notebook("nb.ipynb", ["REM GET /basic"], language="basic"), {"basic": "REM"})
    assert paths(parsed) == ["GET /basic"]


def test_unreadable_notebooks_raise_a_short_reason(tmp_path):
    (tmp_path / "junk.ipynb").write_text("{not json")
    (tmp_path / "v3.ipynb").write_text('{"cells": 5, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}')
    for name, why in [("missing.ipynb", "not found"), ("junk.ipynb", "not a notebook"), ("v3.ipynb", "not")]:
        with pytest.raises(NotebookError, match=why):
            read_notebook(tmp_path / name)
