"""`fngw test`: every shipped example's examples pass on real kernels; failures are located and
make the exit status 1; reports for CI (GitHub annotations, JUnit XML); usage errors exit 2."""

from __future__ import annotations

import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from conftest import REPO
from gateway import gateway_env

FNGW = str(Path(sys.executable).with_name("fngw"))


def fngw_test(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [FNGW, "test", *args], cwd=cwd, env=gateway_env(), capture_output=True, text=True, timeout=180
    )


@pytest.mark.parametrize("example", ["hello", "climate", "charts"])
def test_the_shipped_examples_pass(example):
    run = fngw_test(f"examples/{example}/fngw.yaml")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "0 failed" in run.stdout and "FAIL" not in run.stdout


def failing_manifest(tmp_path: Path) -> Path:
    typed = REPO / "tests" / "typed"
    text = (typed / "fngw.yaml").read_text()
    text = text.replace("body: {sku: W-1, qty: 2, dry_run: true}}", "body: {sku: W-1, qty: 3}}")
    text = re.sub(r"path: (\w+)\.ipynb", lambda m: f"path: {typed / m.group(1)}.ipynb", text)
    text = text.replace("$ref: schemas/", f"$ref: {typed}/schemas/")
    target = tmp_path / "fngw.yaml"
    target.write_text(text)
    return target


def test_a_failing_example_is_located_and_exits_1(tmp_path):
    manifest = failing_manifest(tmp_path)
    report = tmp_path / "junit.xml"
    run = fngw_test(str(manifest), "--junit-xml", str(report), "--format", "github")
    assert run.returncode == 1, run.stdout + run.stderr
    assert "FAIL  POST /orders/:region · two widgets" in run.stdout
    assert f"{manifest}:22:13: body/qty: expected 3, got 2" in run.stdout
    assert f"::error file={manifest},line=22,col=13,title=fngw test::" in run.stdout
    assert "2 passed, 1 failed" in run.stdout
    suite = ET.parse(report).getroot()
    assert (suite.get("tests"), suite.get("failures")) == ("3", "1")
    failure = suite.find("testcase[@name='two widgets']/failure")
    assert failure is not None and failure.get("message") == "body/qty: expected 3, got 2"


def test_one_endpoint_and_usage_errors(tmp_path):
    manifest = failing_manifest(tmp_path)
    run = fngw_test(str(manifest), "--endpoint", "GET /orders/:region")
    assert run.returncode == 0 and "1 passed, 0 failed" in run.stdout, run.stdout + run.stderr
    unknown = fngw_test(str(manifest), "--endpoint", "GET /nope")
    assert unknown.returncode == 2 and "no examples for GET /nope" in unknown.stderr
    missing = fngw_test(str(tmp_path / "absent.yaml"))
    assert missing.returncode == 2


def test_an_invalid_manifest_exits_1_with_its_problems(tmp_path):
    bad = tmp_path / "fngw.yaml"
    bad.write_text("version: 1\nnotebooks:\n  x: {path: nope.ipynb}\n")
    run = fngw_test(str(bad))
    assert run.returncode == 1 and "nope.ipynb" in run.stderr


def test_a_failing_seed_and_a_dying_kernel_fail_their_examples_only(tmp_path):
    from conftest import write_notebook

    write_notebook(tmp_path / "broken.ipynb", ["raise RuntimeError('seed broke')", "# GET /x\nprint('x')"])
    write_notebook(
        tmp_path / "svc.ipynb",
        ["import os", "# GET /die\nos._exit(1)", "# GET /count\nprint(2)", "# GET /first\nprint(1)"],
    )
    (tmp_path / "fngw.yaml").write_text(
        "version: 1\n"
        "notebooks:\n"
        "  broken:\n"
        "    path: broken.ipynb\n"
        "    mount: /broken\n"
        "    endpoints:\n"
        '      "GET /x": {examples: [{name: never}]}\n'
        "  svc:\n"
        "    path: svc.ipynb\n"
        "    endpoints:\n"  # manifest order: first, die, count (routing order would differ)
        '      "GET /first": {examples: [{name: one, response: {body: "1"}}]}\n'
        '      "GET /die": {examples: [{name: dies, response: {status: 502}}]}\n'
        '      "GET /count": {examples: [{name: after the death, response: {body: "2"}}]}\n'
    )
    run = fngw_test(str(tmp_path / "fngw.yaml"))
    assert run.returncode == 1, run.stdout + run.stderr
    lines = [line for line in run.stdout.splitlines() if line.startswith(("PASS", "FAIL"))]
    assert [line.split("  ")[1] for line in lines] == [
        "GET /broken/x · never",
        "GET /first · one",
        "GET /die · dies",
        "GET /count · after the death",
    ]
    assert lines[0].startswith("FAIL") and "seed broke" in run.stdout
    assert all(line.startswith("PASS") for line in lines[1:]), run.stdout


def test_an_unwritable_report_is_refused_before_any_example_runs(tmp_path):
    run = fngw_test("examples/hello/fngw.yaml", "--junit-xml", str(tmp_path / "no" / "such" / "x.xml"))
    assert run.returncode == 2 and "cannot write" in run.stderr and "PASS" not in run.stdout
