"""Problems found in a manifest, and the three ways `fngw validate` prints them."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass


@dataclass(frozen=True, order=True)
class Problem:
    """One finding: where it is (file, 1-based line and column, JSON path), what, and which rule."""

    file: str
    line: int
    col: int
    path: str
    message: str
    rule: str
    severity: str = "error"  # "error" or "warning"

    def format_text(self) -> str:
        """file:line:col: severity: json.path: message [rule]."""
        return f"{self.file}:{self.line}:{self.col}: {self.severity}: {self.path}: {self.message} [{self.rule}]"

    def format_github(self) -> str:
        """The problem as a GitHub Actions annotation (::error file=...,line=...::message)."""
        # GitHub workflow commands: ',' ':' and newlines must be escaped inside properties/messages.

        def esc(value: str, prop: bool = False) -> str:
            value = value.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
            if prop:
                value = value.replace(":", "%3A").replace(",", "%2C")
            return value

        level = "error" if self.severity == "error" else "warning"
        props = f"file={esc(self.file, True)},line={self.line},col={self.col},title={esc(self.rule, True)}"
        return f"::{level} {props}::{esc(self.path + ': ' + self.message)}"


def count(problems: Iterable[Problem]) -> tuple[int, int]:
    """(errors, warnings)."""
    errors = warnings = 0
    for p in problems:
        if p.severity == "error":
            errors += 1
        else:
            warnings += 1
    return errors, warnings


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def summary_line(results: Sequence[tuple[str, Sequence[Problem]]]) -> str:
    """One line counting errors and warnings."""
    errors = warnings = 0
    for _, problems in results:
        e, w = count(problems)
        errors, warnings = errors + e, warnings + w
    files = _plural(len(results), "file")
    if not errors and not warnings:
        return f"{files} valid"
    verdict = "invalid" if errors else "valid"
    return f"{_plural(errors, 'error')}, {_plural(warnings, 'warning')} in {files} ({verdict})"


def render_generated(problems: Sequence[Problem], generated: str, said_by: str, label: str) -> str:
    """``render``'s text for ``problems`` of a manifest fngw wrote itself (``generated``, such as
    `fngw serve`'s): a problem located in that file, which its user never wrote, is said by
    ``said_by`` without a place; the others as usual (``label`` names them in the summary)."""
    own = [f"{said_by}: {p.severity}: {p.message} [{p.rule}]" for p in problems if p.file == generated]
    located = [p for p in problems if p.file != generated]
    if located or not own:
        own.append(render([(label, located)], "text"))
    return "\n".join(own)


def render(results: Sequence[tuple[str, Sequence[Problem]]], fmt: str) -> str:
    """Render per-file results as ``text``, ``json`` or ``github``."""
    if fmt == "json":
        errors = sum(count(p)[0] for _, p in results)
        warnings = sum(count(p)[1] for _, p in results)
        doc = {
            "valid": errors == 0,
            "errors": errors,
            "warnings": warnings,
            "files": [{"file": f, "valid": count(p)[0] == 0, "problems": [asdict(x) for x in p]} for f, p in results],
        }
        return json.dumps(doc, indent=2)
    lines = []
    for _, problems in results:
        for p in problems:
            lines.append(p.format_github() if fmt == "github" else p.format_text())
    lines.append(summary_line(results))
    return "\n".join(lines)
