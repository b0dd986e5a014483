"""Finding HTTP endpoints in a notebook, as Jupyter Kernel Gateway's notebook-http cell parser does.

A code cell whose first line is ``<comment> VERB /path`` is (part of) an endpoint; a cell whose first
line is ``<comment> ResponseInfo VERB /path`` supplies that endpoint's response metadata; cells with
the same annotation concatenate in notebook order; every other code cell is a seed cell run on each
kernel at start. The comment prefix follows ``metadata.language_info.name``.

Deliberate differences from Kernel Gateway, all documented in docs/compatibility.md:
- PATCH is an endpoint verb too.
- The path is the first word after the verb; trailing text on the annotation line is ignored instead
  of becoming part of the path, and the path is literal text, never a regular expression.
- Malformed paths (no leading '/', a ':' parameter with an invalid or repeated name) are reported as
  problems instead of being registered as routes that can never match.
"""

from __future__ import annotations

import json
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import nbformat
from nbformat.warnings import MissingIDFieldWarning

VERBS = ("GET", "POST", "PUT", "DELETE", "PATCH")

# Comment prefix by language_info.name (lower case); anything else uses '#'.
DEFAULT_COMMENT_PREFIXES: Mapping[str, str] = MappingProxyType(
    {
        "scala": "//",
        "java": "//",
        "javascript": "//",
        "typescript": "//",
        "kotlin": "//",
        "go": "//",
        "rust": "//",
        "c": "//",
        "c++": "//",
        "csharp": "//",
        "c#": "//",
        "groovy": "//",
        "swift": "//",
        "sql": "--",
        "haskell": "--",
        "lua": "--",
        "matlab": "%",
        "octave": "%",
        "prolog": "%",
        "erlang": "%",
        "clojure": ";;",
        "scheme": ";;",
        "racket": ";;",
        "common-lisp": ";;",
    }
)

_PARAM = re.compile(r"^:([A-Za-z_][A-Za-z0-9_]*)$")
_SEGMENT = re.compile(r"^[A-Za-z0-9._~!$&'()*+,;=@%-]+$")


class NotebookError(Exception):
    """The file is not a readable nbformat notebook. ``line`` and ``col`` (1-based) say where in
    the file, when the file is not JSON; ``where`` (a JSON path such as ``cells[1].source``) and
    ``cell`` (its index, when it is in a cell) say what is wrong in a JSON file that is not a valid
    notebook."""

    def __init__(
        self,
        message: str,
        line: int | None = None,
        col: int | None = None,
        *,
        where: str | None = None,
        cell: int | None = None,
    ):
        super().__init__(message)
        self.line = line
        self.col = col
        self.where = where
        self.cell = cell


@dataclass(frozen=True)
class ParseProblem:
    """A cell that cannot be served as it is; ``line`` and ``col`` (1-based) are within the cell."""

    cell_index: int
    message: str
    rule: str
    line: int = 1
    col: int = 1


@dataclass(frozen=True)
class Endpoint:
    """One ``VERB /path`` of a notebook, with its code and response metadata code."""

    method: str
    path: str
    source: str
    cell_indices: tuple[int, ...]
    params: tuple[str, ...]
    response_info: str | None = None
    response_info_cells: tuple[int, ...] = ()
    description: str | None = None
    operation: tuple[str, str] | None = None  # (path key, method key) in the notebook's API document

    @property
    def annotation(self) -> str:
        """How the manifest names it: ``"GET /scotches/:name"``."""
        return f"{self.method} {self.path}"


@dataclass(frozen=True)
class ParsedNotebook:
    """What a notebook declares: its language, kernelspec, endpoints in route order, seed cells."""

    path: Path | None
    language: str
    kernelspec: str | None
    comment_prefix: str
    endpoints: tuple[Endpoint, ...]
    seed_cells: tuple[str, ...]
    seed_cell_indices: tuple[int, ...]
    problems: tuple[ParseProblem, ...] = ()
    orphan_response_infos: tuple[str, ...] = ()
    source_endpoints: Mapping[str, Endpoint] = field(default_factory=lambda: MappingProxyType({}))
    api_document: Mapping[str, Any] | None = None  # api: openapi: the OpenAPI/Swagger document a cell holds
    code_cells: Mapping[int, str] = field(default_factory=lambda: MappingProxyType({}))  # what kernels run, by index

    def endpoint(self, annotation: str) -> Endpoint | None:
        return self.source_endpoints.get(annotation)


def read_notebook(path: str | Path) -> nbformat.NotebookNode:
    """Read and validate an .ipynb file (nbformat 4), raising ``NotebookError`` with a short reason.
    Cells without ids (notebooks written before nbformat 4.5, or by hand) are fine: nbformat's
    warning about them would only repeat on every start and reload."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MissingIDFieldWarning)
        return _read_notebook(path)


def _read_notebook(path: str | Path) -> nbformat.NotebookNode:
    try:
        nb = nbformat.read(str(path), as_version=4)
    except FileNotFoundError:
        raise NotebookError("file not found") from None
    except IsADirectoryError:
        raise NotebookError("is a directory, not a notebook") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise NotebookError(f"cannot read it: {exc}") from None
    except Exception as exc:  # nbformat raises plain ValueError/NotJSONError/AttributeError for junk
        located = _json_error(Path(path))
        if located is not None:  # a half-saved or hand-edited file: say where it breaks
            reason = located.msg.removesuffix(" at")  # json's "Invalid control character at" (the place follows)
            raise NotebookError(f"not a notebook: not JSON: {reason}", located.lineno, located.colno) from None
        raise NotebookError(f"not a notebook: {str(exc).splitlines()[0][:200]}") from None
    try:
        nbformat.validate(nb)
    except nbformat.ValidationError as exc:
        found = list(getattr(exc, "absolute_path", None) or ())
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in found).lstrip(".") or "$"
        cell = found[1] if len(found) > 1 and found[0] == "cells" and isinstance(found[1], int) else None
        message = f"not a valid nbformat 4 notebook: {_invalid_reason(exc)}"
        raise NotebookError(message, where=where, cell=cell) from None
    return nb


# The keys that say which kind of cell or output a mapping is; the schema's message for a wrong one
# ("{...the whole cell...} is not valid under any of the given schemas") does not say so.
KINDS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "cell_type": ("code", "markdown", "raw"),
        "output_type": ("stream", "display_data", "execute_result", "error"),
    }
)


def _invalid_reason(exc: nbformat.ValidationError) -> str:
    """What nbformat's schema refused, in a line: an unknown cell or output type by name; else the
    schema's first line, without the repr of a whole cell."""
    instance = getattr(exc, "instance", None)
    if isinstance(instance, dict):
        for key, kinds in KINDS.items():
            if key in instance and instance[key] not in kinds:
                return f"{key} {instance[key]!r} is not one of {', '.join(kinds)}"
    message = str(getattr(exc, "message", exc)).splitlines()[0]
    if isinstance(instance, dict | list) and message.startswith(("{", "[")):
        what = "this cell or output" if isinstance(instance, dict) else "this list"
        message = what + message[message.find(" is ") :]
    return message[:200]


def _json_error(path: Path) -> json.JSONDecodeError | None:
    """Where ``path`` stops being JSON (None: it is JSON, or unreadable)."""
    try:
        json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        return exc
    except (OSError, ValueError):
        return None
    return None


def cell_source(cell: Mapping[str, Any]) -> str:
    """A cell's text (nbformat allows it as a list of lines)."""
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else source


def opened(nb: nbformat.NotebookNode | str | Path) -> tuple[Path | None, nbformat.NotebookNode, str, str | None]:
    """(its path or None, the notebook, ``language_info.name`` in lower case or "", the kernelspec
    name or None) of a notebook node or path (read with ``read_notebook``)."""
    path = None
    if not isinstance(nb, nbformat.NotebookNode):
        path = Path(nb)
        nb = read_notebook(path)
    metadata: dict[str, Any] = nb.get("metadata", {}) or {}
    kernelspec = metadata.get("kernelspec") or {}
    # language_info is written by Jupyter once a kernel ran; a notebook never run has only the
    # kernelspec's language (bash_kernel's notebooks say "bash" there)
    language = str((metadata.get("language_info") or {}).get("name") or kernelspec.get("language") or "").lower()
    return path, nb, language, kernelspec.get("name") or None


def parse_notebook(
    nb: nbformat.NotebookNode | str | Path,
    comment_prefixes: Mapping[str, str] = DEFAULT_COMMENT_PREFIXES,
) -> ParsedNotebook:
    """Parse a notebook (node or path) into endpoints in route order and seed cells. Raises what
    ``read_notebook`` raises for a path; problems in annotations are reported in ``problems``."""
    path, nb, language, kernelspec = opened(nb)
    prefix = comment_prefixes.get(language, "#")
    found = _Cells(prefix)
    for index, cell in enumerate(nb.cells):
        found.add(index, cell)
    ordered = order_endpoints(found.endpoints())
    return ParsedNotebook(
        path=path,
        language=language or "python",
        kernelspec=kernelspec,
        comment_prefix=prefix,
        endpoints=tuple(ordered),
        seed_cells=tuple(found.seeds),
        seed_cell_indices=tuple(found.seed_indices),
        problems=tuple(found.problems),
        orphan_response_infos=tuple(a for a in found.info_sources if a not in found.sources),
        source_endpoints=MappingProxyType({e.annotation: e for e in ordered}),
        code_cells=MappingProxyType(found.code),
    )


class _Cells:
    """The cells of one notebook, sorted by their annotation (``GET /x``) as they come."""

    def __init__(self, prefix: str):
        verbs = "|".join(VERBS)
        self.api = re.compile(rf"^{re.escape(prefix)}\s+({verbs})\s+(\S+)")
        self.response = re.compile(rf"^{re.escape(prefix)}\s+ResponseInfo\s+({verbs})\s+(\S+)")
        self.sources: dict[str, list[str]] = {}
        self.cells: dict[str, list[int]] = {}
        self.descriptions: dict[str, str] = {}
        self.info_sources: dict[str, list[str]] = {}
        self.info_cells: dict[str, list[int]] = {}
        self.seeds: list[str] = []
        self.seed_indices: list[int] = []
        self.problems: list[ParseProblem] = []
        self.code: dict[int, str] = {}  # the code cells kernels run (seed, endpoint, ResponseInfo)
        self.previous_markdown: str | None = None  # an endpoint's description: the markdown cell before it

    def add(self, index: int, cell: Mapping[str, Any]) -> None:
        source = cell_source(cell)
        markdown, self.previous_markdown = self.previous_markdown, None
        if cell.get("cell_type") != "code":
            self.previous_markdown = source.strip() if cell.get("cell_type") == "markdown" else None
            return
        first_line = source.split("\n", 1)[0]
        info = self.response.match(first_line)
        hit = info or self.api.match(first_line)
        if hit is None:
            self.seeds.append(source)
            self.seed_indices.append(index)
            self.code[index] = source
            return
        method, path_text = hit.group(1), hit.group(2)
        problem = check_path(path_text)
        if problem:
            message = f"{method} {path_text}: {problem}"
            self.problems.append(ParseProblem(index, message, "annotation-path", 1, hit.start(2) + 1))
            return
        self.code[index] = source
        annotation = f"{method} {path_text}"
        if info:
            self.info_sources.setdefault(annotation, []).append(source)
            self.info_cells.setdefault(annotation, []).append(index)
            return
        self.sources.setdefault(annotation, []).append(source)
        self.cells.setdefault(annotation, []).append(index)
        if markdown and annotation not in self.descriptions:
            self.descriptions[annotation] = markdown

    def endpoints(self) -> list[Endpoint]:
        found = []
        for annotation, parts in self.sources.items():
            method, path_text = annotation.split(" ", 1)
            infos = self.info_sources.get(annotation)
            found.append(
                Endpoint(
                    method=method,
                    path=path_text,
                    source=join_cells(parts),
                    cell_indices=tuple(self.cells[annotation]),
                    params=tuple(seg[1:] for seg in path_text.split("/") if seg.startswith(":")),
                    response_info=join_cells(infos) if infos else None,
                    response_info_cells=tuple(self.info_cells.get(annotation, ())),
                    description=self.descriptions.get(annotation),
                )
            )
        return found


def join_cells(parts: list[str]) -> str:
    """Concatenate cells the way Kernel Gateway does: each followed by a newline."""
    return "".join(part + "\n" for part in parts)


def check_path(path: str) -> str | None:
    """Why ``path`` cannot be a route, or ``None`` when it can."""
    if not path.startswith("/"):
        return "the path must start with '/'"
    if path != "/" and path.endswith("/"):
        return "the path must not end with '/'"
    seen: set[str] = set()
    for seg in path.strip("/").split("/") if path != "/" else []:
        if not seg:
            return "the path has an empty segment ('//')"
        if seg.startswith(":"):
            m = _PARAM.match(seg)
            if not m:
                return f"{seg!r} is not a valid parameter: ':' then a letter or '_', then letters, digits or '_'"
            if m.group(1) in seen:
                return f"parameter {seg!r} appears twice"
            seen.add(m.group(1))
        elif not _SEGMENT.match(seg):
            return f"segment {seg!r} has characters that are not allowed in a URL path"
    return None


def path_shape(path: str) -> str:
    """The path with parameter names erased: two paths of one shape match the same URLs."""
    return "/".join(":" if seg.startswith(":") else seg for seg in path.split("/"))


def route_sort_key(path: str) -> tuple[int, int]:
    """Sort key of a route path: constant paths first, then deeper first parameters first.

    Sorting is stable, so ties keep notebook (and manifest) order, as in Kernel Gateway.
    """
    for depth, seg in enumerate(path.strip("/").split("/")):
        if seg.startswith(":"):
            return (1, -depth)
    return (0, 0)


def order_endpoints(endpoints: list[Endpoint]) -> list[Endpoint]:
    """Endpoints in route order (see ``route_sort_key``)."""
    return sorted(endpoints, key=lambda e: route_sort_key(e.path))
