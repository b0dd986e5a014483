"""Problems in a notebook's cells are located in the notebook file (``nb.ipynb:line:col``), where
an editor jumps to them: malformed annotations, and Python cells that cannot compile."""

from __future__ import annotations

import json
import warnings

import pytest

from fngw.deployment import check_deployment
from fngw.notebook import NotebookError, read_notebook
from fngw.notebook.locate import CellLocator
from fngw.notebook.syntax import python_syntax_errors

NOTEBOOK_METADATA = {
    "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
    "language_info": {"name": "python"},
}


def write(path, sources, *, ids=True, ascii=True):
    """A notebook as Jupyter writes it (sources as lists of lines), or with a source given as a
    list already kept, or a plain string (``str``)."""
    cells = []
    for index, source in enumerate(sources):
        if isinstance(source, str):
            source = source.splitlines(keepends=True)
        elif isinstance(source, tuple):
            source = "".join(source)  # one string, as some writers keep it
        cell = {"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [], "source": source}
        if ids:
            cell["id"] = f"cell-{index}"
        cells.append(cell)
    doc = {"cells": cells, "metadata": NOTEBOOK_METADATA, "nbformat": 4, "nbformat_minor": 5 if ids else 4}
    path.write_text(json.dumps(doc, indent=1, sort_keys=True, ensure_ascii=ascii) + "\n", encoding="utf-8")
    return path


def line_col(text, needle):
    before = text[: text.index(needle)]
    return before.count("\n") + 1, len(before) - (before.rfind("\n") + 1) + 1


def check(tmp_path, sources, **kw):
    write(tmp_path / "nb.ipynb", sources, **kw)
    (tmp_path / "fngw.yaml").write_text("version: 1\nnotebooks:\n  nb: {path: nb.ipynb}\n", encoding="utf-8")
    return check_deployment(tmp_path / "fngw.yaml")


def test_a_malformed_annotation_is_located_at_its_path_in_the_notebook(tmp_path):
    result = check(tmp_path, ["import json\n", "# GET /ok\nprint(1)", "# GET hello\nprint(2)"])
    [problem] = result.problems
    text = (tmp_path / "nb.ipynb").read_text()
    assert (problem.file, problem.line, problem.col) == (str(tmp_path / "nb.ipynb"), *line_col(text, 'hello\\n"'))
    assert problem.path == "cells[2].source" and problem.rule == "annotation-path"
    assert "GET hello" in problem.message
    assert result.deployment is None


@pytest.mark.parametrize("form", ["lines", "string"])
def test_a_cell_that_cannot_compile_is_an_error_at_its_line(tmp_path, form):
    broken = "# GET /broken\nx = 1\nif x\n    print(x)\n"
    result = check(tmp_path, ["import json\n", broken if form == "lines" else (broken,)])
    [problem] = result.problems
    text = (tmp_path / "nb.ipynb").read_text()
    assert problem.rule == "cell-syntax" and problem.severity == "warning"  # Kernel Gateway serves it: 500s
    assert "SyntaxError" in problem.message and "if x" in problem.message
    assert problem.path == "cells[1].source"
    line, col = line_col(text, "if x")
    assert (problem.line, problem.col) == (line, col + 4)  # Python points after "if x"
    assert result.deployment is not None


@pytest.mark.parametrize("form", ["lines", "string"])
@pytest.mark.parametrize("ascii", [True, False], ids=["escaped", "raw"])
def test_the_column_counts_escaped_characters_as_the_file_holds_them(tmp_path, form, ascii):
    # Quotes, backslashes, tabs and (escaped) non-ASCII characters before the error take more
    # characters in the .ipynb than in the cell: the column is the file's.
    broken = '# GET /x\nprint(json.dumps({"caf\u00e9": "\\t\t\U0001f600"}) +)\n'
    write(tmp_path / "nb.ipynb", [broken if form == "lines" else (broken,)], ascii=ascii)
    (tmp_path / "fngw.yaml").write_text("version: 1\nnotebooks:\n  nb: {path: nb.ipynb}\n", encoding="utf-8")
    [problem] = check_deployment(tmp_path / "fngw.yaml").problems
    text = (tmp_path / "nb.ipynb").read_text(encoding="utf-8")
    line = text.splitlines()[problem.line - 1]
    assert line[problem.col - 1 :].startswith(")"), (line, problem.col)  # Python points at the ")" after "+"


def test_a_broken_seed_cell_is_found_too_and_each_cell_once(tmp_path):
    result = check(tmp_path, ["import json(\n", "# GET /a\nprint(1)\n", "# GET /a\n  print(2)\n"])
    found = sorted((p.path, p.message.split(":")[0]) for p in result.problems)
    assert found == [("cells[0].source", "SyntaxError"), ("cells[2].source", "IndentationError")]


def test_ipython_syntax_is_not_refused():
    cells = {
        0: "%load_ext autoreload\n!ls -l\nfiles = !ls\n",
        1: "%%bash\nif then fi ((\n",
        2: "import asyncio\nawait asyncio.sleep(0)\n",
        3: "%timeit -n1 sum(range(10))\nx?\n",
    }
    assert python_syntax_errors(cells) == []


def test_other_languages_are_not_compiled(tmp_path):
    write(tmp_path / "nb.ipynb", ["# GET /a\nthis is { not python"])
    doc = json.loads((tmp_path / "nb.ipynb").read_text())
    doc["metadata"] = {"kernelspec": {"name": "python3", "display_name": "R"}, "language_info": {"name": "R"}}
    (tmp_path / "nb.ipynb").write_text(json.dumps(doc))
    (tmp_path / "fngw.yaml").write_text("version: 1\nnotebooks:\n  nb: {path: nb.ipynb}\n", encoding="utf-8")
    assert not [p for p in check_deployment(tmp_path / "fngw.yaml").problems if p.rule == "cell-syntax"]


def test_a_worker_does_not_compile_again(tmp_path):
    check(tmp_path, ["# GET /a\nif x\n"])
    assert check_deployment(tmp_path / "fngw.yaml", compile_cells=False).ok


def test_a_source_key_elsewhere_does_not_mislead_the_locator(tmp_path):
    path = write(tmp_path / "nb.ipynb", ["print(1)\n", "# GET hello\n"])
    doc = json.loads(path.read_text())
    doc["cells"][0]["metadata"] = {"source": ["# GET hello\n"]}  # the same value, in metadata
    doc["cells"][1]["outputs"] = [{"name": "stdout", "output_type": "stream", "text": ['"source": 1\n']}]
    path.write_text(json.dumps(doc, indent=1, sort_keys=True))
    text = path.read_text()
    source = text.rindex('"# GET hello\\n"')  # cell 1's own source: after cell 0's metadata copy
    before = text[: source + 1]
    assert CellLocator(path).locate(1, 1, 7) == (before.count("\n") + 1, len(before) - before.rfind("\n") - 1 + 7)


def test_an_unlocatable_cell_falls_back_to_the_manifest(tmp_path):
    assert CellLocator(tmp_path / "gone.ipynb").locate(0) is None


def test_cells_without_ids_read_without_a_warning(tmp_path):
    path = write(tmp_path / "old.ipynb", ["# GET /a\nprint(1)\n"], ids=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        read_notebook(path)


def test_a_notebook_nbformat_refuses_is_located_at_the_cell_at_fault(tmp_path):
    path = write(tmp_path / "nb.ipynb", ["# GET /a\nprint(1)\n", "x = 1\n"])
    doc = json.loads(path.read_text())
    doc["cells"][1]["source"] = 123
    path.write_text(json.dumps(doc, indent=1, sort_keys=True))
    (tmp_path / "fngw.yaml").write_text("version: 1\nnotebooks:\n  nb: {path: nb.ipynb}\n", encoding="utf-8")
    [problem] = check_deployment(tmp_path / "fngw.yaml").problems
    text = path.read_text()
    assert (problem.file, problem.path, problem.rule) == (str(path), "cells[1].source", "notebook-unreadable")
    assert text.splitlines()[problem.line - 1][problem.col - 1 :].startswith("123")
    assert "not a valid nbformat 4 notebook" in problem.message


def test_a_missing_notebook_outside_the_manifests_folder_is_named_by_its_real_path(tmp_path):
    (tmp_path / "conf").mkdir()
    manifest = tmp_path / "conf" / "fngw.yaml"
    manifest.write_text("version: 1\nnotebooks:\n  nb: {path: ../gone.ipynb}\n", encoding="utf-8")
    [problem] = check_deployment(manifest).problems
    assert problem.file == str(manifest) and str(tmp_path / "gone.ipynb") in problem.message


@pytest.mark.parametrize("ascii", [True, False], ids=["escaped", "raw"])
def test_a_line_split_across_strings_of_the_list_is_followed_into_the_next(tmp_path, ascii):
    # Jupyter writes one line a string; other tools split a line anywhere.
    source = ["# GET /multi\n", 'x = 1; y = "\u00e9\t"; ', "z = $bad\n", "w = 2\n"]
    write(tmp_path / "nb.ipynb", [source], ascii=ascii)
    doc = json.loads((tmp_path / "nb.ipynb").read_text(encoding="utf-8"))
    assert doc["cells"][0]["source"] == source  # kept as written (the helper keeps lists)
    (tmp_path / "fngw.yaml").write_text("version: 1\nnotebooks:\n  nb: {path: nb.ipynb}\n", encoding="utf-8")
    [problem] = check_deployment(tmp_path / "fngw.yaml").problems
    line = (tmp_path / "nb.ipynb").read_text(encoding="utf-8").splitlines()[problem.line - 1]
    assert line[problem.col - 1 :].startswith("$bad"), (line, problem.col)
    assert CellLocator(tmp_path / "nb.ipynb").locate(0, 3)[0] == problem.line + 1  # "w = 2" is the next string


@pytest.mark.parametrize(
    ("change", "reason", "where"),
    [
        ({"cell_type": "cod"}, "cell_type 'cod' is not one of code, markdown, raw", "cells[1]"),
        ({"outputs": [{"output_type": "bogus"}]}, "output_type 'bogus' is not one of stream,", "cells[1].outputs[0]"),
    ],
)
def test_an_unknown_cell_or_output_type_is_named_not_dumped(tmp_path, change, reason, where):
    path = write(tmp_path / "nb.ipynb", ["# GET /a\nprint(1)\n", "x = 1\n"])
    doc = json.loads(path.read_text())
    doc["cells"][1].update(change)
    path.write_text(json.dumps(doc, indent=1, sort_keys=True))
    with pytest.raises(NotebookError) as raised:
        read_notebook(path)
    assert reason in str(raised.value) and "{" not in str(raised.value) and raised.value.where == where


def test_a_json_error_message_is_not_cut_off(tmp_path):
    (tmp_path / "nb.ipynb").write_text('{"cells": ["a\x01b"]}')
    with pytest.raises(NotebookError, match=r"not JSON: Invalid control character$"):
        read_notebook(tmp_path / "nb.ipynb")


def test_a_notebook_served_twice_is_reported_once(tmp_path):
    write(tmp_path / "nb.ipynb", ["# GET /a\nif x\n"])
    manifest = "version: 1\nnotebooks:\n  one: {path: nb.ipynb}\n  two: {path: nb.ipynb, mount: /two}\n"
    (tmp_path / "fngw.yaml").write_text(manifest, encoding="utf-8")
    assert [p.rule for p in check_deployment(tmp_path / "fngw.yaml").problems] == ["cell-syntax"]
