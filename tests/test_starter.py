"""`fngw init` writes a starter manifest that validates; `fngw serve` serves one notebook as it is."""

from __future__ import annotations

import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from conftest import write_notebook
from gateway import free_port, start_serve

FNGW = [sys.executable, "-m", "fngw"]


def run(*args, cwd=None):
    return subprocess.run([*FNGW, *args], capture_output=True, text=True, cwd=cwd, timeout=120)


def test_init_lists_the_notebooks_of_a_folder_in_a_manifest_that_validates(tmp_path):
    write_notebook(tmp_path / "Sales Report.ipynb", ["# GET /total\nprint(3)"])
    write_notebook(tmp_path / "models" / "score.ipynb", ["# POST /score\nprint(1)", "# GET /total\nprint(4)"])
    write_notebook(tmp_path / "notes.ipynb", ["print('no endpoint')"])
    write_notebook(tmp_path / ".ipynb_checkpoints" / "score-checkpoint.ipynb", ["# GET /old\nprint(0)"])
    result = run("init", str(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    text = (tmp_path / "fngw.yaml").read_text()
    assert "sales-report:" in text and "score:" in text and "checkpoint" not in text
    assert "#   notes.ipynb" in text  # listed as not served, with the reason
    routes = run("routes", str(tmp_path / "fngw.yaml"))
    assert routes.returncode == 0, routes.stderr
    # Both declare GET /total: each notebook is mounted under its own name.
    assert "/sales-report/total" in routes.stdout and "/score/total" in routes.stdout

    again = run("init", str(tmp_path))
    assert again.returncode == 2 and "--force" in again.stderr
    assert run("init", str(tmp_path), "--force").returncode == 0


def test_init_in_a_folder_without_notebooks_still_writes_a_valid_manifest(tmp_path):
    assert run("init", str(tmp_path)).returncode == 0
    assert run("validate", str(tmp_path / "fngw.yaml")).returncode == 0


def test_a_notebook_named_as_its_file_keeps_its_name_and_repeats_are_numbered():
    from fngw.starter import unique_names

    paths = [Path(p) for p in ("2fast.ipynb", "My-Scores.ipynb", "fast.ipynb", "my scores.ipynb", "sub/fast.ipynb")]
    named = unique_names(paths)
    assert named["fast"] == Path("fast.ipynb")  # not taken by 2fast, whose name had to be made
    assert named["my-scores"] == Path("My-Scores.ipynb") and named["my-scores-2"] == Path("my scores.ipynb")
    assert {named["fast-2"], named["fast-3"]} == {Path("2fast.ipynb"), Path("sub/fast.ipynb")}
    assert list(named.values()) == paths  # in the order given


def test_a_followed_folder_keeps_each_notebooks_url_and_its_broken_notebooks(tmp_path):
    import json

    from fngw.starter import regenerate_serve_manifest, serve_manifest, served_notebooks, unique_names

    folder = tmp_path / "f"
    for stem in ("fast", "2fast", "other"):
        write_notebook(folder / f"{stem}.ipynb", [f"# GET /x\nprint('{stem}')"])
    said: list[str] = []
    notebooks = served_notebooks([str(folder)], said.append)
    options = {"pool": 1, "timeout": "30s", "max_queue": 10, "kernel_api": False, "log_format": "json"}
    names = unique_names(notebooks)
    spec, manifest = tmp_path / "serve.json", tmp_path / "serve.yaml"
    spec.write_text(
        json.dumps({"arguments": [str(folder)], "options": options, "names": {str(p): n for n, p in names.items()}})
    )
    manifest.write_text(serve_manifest(notebooks, **options))
    assert names["fast"] == folder / "fast.ipynb" and names["fast-2"] == folder / "2fast.ipynb"

    (folder / "fast.ipynb").rename(folder / "faster.ipynb")
    assert regenerate_serve_manifest(spec, manifest, said.append)
    text = manifest.read_text()
    assert f'fast-2: {{path: "{folder / "2fast.ipynb"}", mount: /fast-2}}' in text  # its URL did not move
    assert "faster: {path:" in text and "adding /faster for" in " ".join(said)
    assert f"removing /fast ({folder / 'fast.ipynb'} is gone or renamed)" in said

    (folder / "other.ipynb").write_text('{"cells": [')  # broken: kept, for the watcher to report
    (folder / "faster.ipynb").rename(folder / "fastest.ipynb")
    assert regenerate_serve_manifest(spec, manifest, said.append)
    assert "other: {path:" in manifest.read_text() and not any("skipping" in line for line in said)


def test_serve_one_notebook_then_sigterm_leaves_nothing(tmp_path):
    notebook = write_notebook(
        tmp_path / "nb.ipynb",
        ["# GET /double/:n\nimport json\nn = int(json.loads(REQUEST)['path']['n'])\nprint(n * 2)"],
    )
    peer, proc = start_serve(str(notebook), "--pool", "2")
    try:
        peer.wait_ready("/_fngw/ready", timeout=90)
        assert peer.request("GET", "/double/21")[2] == b"42\n"
        metrics = peer.request("GET", "/_fngw/metrics")[2].decode()
        assert 'fngw_pool_size{pool="nb"} 2.0' in metrics
        runtime = Path(tempfile.gettempdir()) / f"fngw-{proc.pid}"  # serve became the gunicorn master
        assert (runtime / "serve.yaml").is_file()
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(15)
    assert code == 0, peer.describe()
    assert not runtime.exists()
    assert '"message": "GET /double/21 200"' in peer.describe()  # JSON logs when not on a terminal


def test_serve_refuses_a_notebook_without_endpoints_and_leaves_nothing(tmp_path):
    notebook = write_notebook(tmp_path / "plain.ipynb", ["print(1)"])
    proc = subprocess.Popen(
        [*FNGW, "serve", str(notebook), "--port", str(free_port())], stderr=subprocess.PIPE, text=True
    )
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 1 and "no annotated cell" in err
    assert not (Path(tempfile.gettempdir()) / f"fngw-{proc.pid}").exists()
    assert run("serve", str(tmp_path / "missing.ipynb")).returncode == 2
