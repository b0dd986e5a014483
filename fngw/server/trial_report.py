"""How ``fngw test`` reports: a line per example and a summary (text), GitHub Actions annotations
(github), and a JUnit XML file for CI systems that collect test reports."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path

from .trial import ExampleResult


def _where(result: ExampleResult) -> str:
    file, line, col = result.example.where
    return f"{file}:{line}:{col}"


def text_report(results: Sequence[ExampleResult], seconds: float) -> str:
    """``PASS``/``FAIL`` per example (each failure's reasons below it, located at the example),
    then ``N passed, M failed in S s``."""
    lines = []
    for result in results:
        lines.append(f"{'PASS' if result.passed else 'FAIL'}  {result.title}  ({result.seconds * 1000:.0f} ms)")
        lines += [f"      {_where(result)}: {problem}" for problem in result.problems]
    failed = sum(not r.passed for r in results)
    lines.append(f"{len(results) - failed} passed, {failed} failed in {seconds:.1f} s")
    return "\n".join(lines)


def github_report(results: Sequence[ExampleResult], seconds: float) -> str:
    """The text report, with an ``::error`` annotation at each failing example."""
    lines = [text_report(results, seconds)]
    for result in results:
        file, line, col = result.example.where
        for problem in result.problems:
            message = f"{result.title}: {problem}".replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
            where = f"file={file},line={line},col={col},title=fngw test"
            lines.append(f"::error {where}::{message}")
    return "\n".join(lines)


def write_junit(results: Sequence[ExampleResult], seconds: float, target: Path) -> None:
    """One ``testsuite`` named ``fngw test``; a ``testcase`` per example (classname: the endpoint)."""
    failed = sum(not r.passed for r in results)
    suite = ET.Element(
        "testsuite", name="fngw test", tests=str(len(results)), failures=str(failed), time=f"{seconds:.3f}"
    )
    for result in results:
        case = ET.SubElement(
            suite,
            "testcase",
            classname=f"{result.route.method} {result.route.path}",
            name=result.example.name,
            time=f"{result.seconds:.3f}",
            file=result.example.where[0],
            line=str(result.example.where[1]),
        )
        if result.problems:
            failure = ET.SubElement(case, "failure", message=result.problems[0])
            failure.text = "\n".join(f"{_where(result)}: {p}" for p in result.problems)
    ET.ElementTree(suite).write(target, encoding="utf-8", xml_declaration=True)
