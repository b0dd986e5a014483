"""`fngw validate` and `fngw routes` as CI and operators use them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO

from fngw.cli import main

DEFAULT_MANIFEST = REPO / "config" / "fngw.yaml"
BROKEN = "version: 1\nnotebooks:\n  nb: {path: nb.ipynb, colour: red}\n"


@pytest.fixture
def broken(notebook, manifest):
    notebook("nb.ipynb", ["# GET /x\nprint(1)"])
    return manifest(BROKEN)


def test_valid_manifest_exits_0(capsys):
    assert main(["validate", str(DEFAULT_MANIFEST)]) == 0
    assert capsys.readouterr().out.strip() == "1 file valid"


def test_invalid_manifest_exits_1_with_located_lines(broken, capsys):
    assert main(["validate", str(broken)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"{broken}:3:24: error: $.notebooks.nb.colour: unknown key 'colour'")
    assert lines[0].endswith("[additionalProperties]")
    assert lines[-1] == "1 error, 0 warnings in 1 file (invalid)"


def test_several_files_are_all_reported(broken, capsys):
    assert main(["validate", str(DEFAULT_MANIFEST), str(broken)]) == 1
    assert capsys.readouterr().out.splitlines()[-1] == "1 error, 0 warnings in 2 files (invalid)"


def test_unreadable_file_and_bad_usage_exit_2(tmp_path, capsys):
    assert main(["validate", str(tmp_path / "missing.yaml")]) == 2
    assert "cannot read" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["validate"])
    assert exc.value.code == 2


def test_validating_a_notebook_says_what_to_do_instead(notebook, capsys):
    path = notebook("scores.ipynb", ["# GET /a\nprint(1)"])
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert "a notebook, not a manifest" in err and f"fngw init {path}" in err and f"fngw serve {path}" in err


def test_json_format(broken, capsys):
    assert main(["validate", "--format", "json", str(broken)]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["valid"] is False and doc["errors"] == 1
    (problem,) = doc["files"][0]["problems"]
    assert problem == {
        "file": str(broken),
        "line": 3,
        "col": 24,
        "path": "$.notebooks.nb.colour",
        "rule": "additionalProperties",
        "severity": "error",
        "message": problem["message"],
    }


def test_github_format(broken, capsys):
    assert main(["validate", "--format", "github", str(broken)]) == 1
    first = capsys.readouterr().out.splitlines()[0]
    assert first.startswith(f"::error file={broken},line=3,col=24,title=additionalProperties::$.notebooks.nb.colour")


def test_github_format_is_the_default_under_github_actions(broken, capsys, monkeypatch):
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    main(["validate", str(broken)])
    assert capsys.readouterr().out.startswith("::error ")


@pytest.mark.parametrize(
    ("variable", "text", "warning", "error"),
    [
        (
            "FNGW_TEST_TOKEN",
            "version: 1\nauth:\n  tokens:\n    ops: {env: FNGW_TEST_TOKEN}\n  default: [ops]\n"
            "notebooks:\n  nb: {path: nb.ipynb}\n",
            ":4:5: warning: $.auth.tokens.ops: token 'ops': environment variable FNGW_TEST_TOKEN",
            ": error: $.auth.tokens.ops:",
        ),
        (  # the gateway refuses to start rather than send "${...}" to Redis as the password
            "FNGW_TEST_REDIS_PASSWORD",
            "version: 1\nkernel_api:\n  registry: redis://:${FNGW_TEST_REDIS_PASSWORD}@127.0.0.1:6379/0\n"
            "jobs:\n  store: redis://:${FNGW_TEST_REDIS_PASSWORD}@127.0.0.1:6379/1\n",
            ":3:13: warning: $.kernel_api.registry: the URL names ${FNGW_TEST_REDIS_PASSWORD}",
            ": error: $.kernel_api.registry:",
        ),
    ],
)
def test_an_unset_secret_variable_is_a_warning_and_an_error_with_strict(
    notebook, manifest, capsys, monkeypatch, variable, text, warning, error
):
    monkeypatch.delenv(variable, raising=False)
    notebook("nb.ipynb", ["# GET /x\nprint(1)"])
    path = manifest(text)
    assert main(["validate", str(path)]) == 0
    assert f"{path}{warning}" in capsys.readouterr().out
    assert main(["validate", "--strict", str(path)]) == 1
    assert error in capsys.readouterr().out
    monkeypatch.setenv(variable, "s3cret")
    assert main(["validate", "--strict", str(path)]) == 0
    assert "s3cret" not in capsys.readouterr().out


def test_missing_kernelspec_is_a_warning_offline(notebook, manifest, capsys):
    notebook("nb.ipynb", ["# GET /x\nprint(1)"], kernelspec="julia-1.10", language="julia")
    path = manifest("version: 1\nnotebooks:\n  nb: {path: nb.ipynb}\n")
    assert main(["validate", str(path)]) == 1
    assert "kernelspec 'julia-1.10' is not installed" in capsys.readouterr().out
    assert main(["validate", "--offline", str(path)]) == 0
    assert "warning" in capsys.readouterr().out


def test_routes_prints_the_route_table(capsys):
    assert main(["routes", str(REPO / "config" / "fngw.yaml")]) == 0
    lines = [line.split() for line in capsys.readouterr().out.splitlines()]
    assert lines[0] == ["METHOD", "PATH", "NOTEBOOK", "POOL", "AUTH", "TIMEOUT"]
    assert lines[1:] == [
        ["GET", "/hello", "hello", "hello", "(size", "1)", "public", "30s"],
        ["POST", "/echo", "hello", "hello", "(size", "1)", "public", "30s"],
        ["GET", "/hello/:name", "hello", "hello", "(size", "1)", "public", "30s"],
    ]


def test_routes_of_an_invalid_manifest_exits_1(broken, capsys):
    assert main(["routes", str(broken)]) == 1
    assert "unknown key 'colour'" in capsys.readouterr().err


def test_console_script_is_installed_and_never_prints_a_traceback(broken):
    script = Path(sys.executable).with_name("fngw")
    assert script.exists(), "install the package: pip install -e '.[test]'"
    run = subprocess.run([str(script), "validate", str(broken)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 1
    assert "Traceback" not in run.stdout + run.stderr
    garbage = broken.with_name("garbage.yaml")
    garbage.write_bytes(b"\xff\xfe\x00bad")
    run = subprocess.run([str(script), "validate", str(garbage)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 1 and "Traceback" not in run.stdout + run.stderr
    assert "not valid UTF-8" in run.stdout
