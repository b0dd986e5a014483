"""Collecting located problems about one manifest: each at the line and column of a JSON path."""

from __future__ import annotations

from .model import Manifest
from .problems import Problem
from .yamlsource import JsonPath, json_path


class ProblemReport:
    """The problems found about ``manifest``, in the order they were added."""

    def __init__(self, manifest: Manifest):
        self.manifest = manifest
        self.problems: list[Problem] = []

    def add(self, path: JsonPath, message: str, rule: str, severity: str = "error", *, key: bool = False) -> None:
        """A problem at ``path``'s value (its key when ``key``), with ``rule`` and ``severity``."""
        source = self.manifest.source
        loc = source.key(path) if key else source.value(path)
        self.problems.append(
            Problem(str(self.manifest.path), loc.line, loc.col, json_path(path), message, rule, severity)
        )
