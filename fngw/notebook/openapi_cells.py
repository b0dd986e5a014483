"""Notebooks that carry their API description (``api: openapi``), as Kernel Gateway's swagger
parser reads them, without its defects.

One cell (markdown, raw or code) holds an OpenAPI 3.x or Swagger 2.0 document, as fenced JSON or
YAML (```` ```json ```` ... ```` ``` ````) or as the whole cell. Code cells are annotated with
an operation's id on their first line: ``# operationId: getScotch`` (Kernel Gateway's form) or
``# getScotch`` (short; only for ids the document declares), and ``# ResponseInfo operationId:
getScotch`` or ``# ResponseInfo getScotch``. Each operation becomes the route its document path and
method say (``/scotches/{name}`` is ``/scotches/:name``; verbs in any case); every other code cell
seeds the kernels.

Differences from Kernel Gateway (docs/compatibility.md): lowercase verbs work (Kernel Gateway
answered 405 to every request); only path parameters are path segments (Kernel Gateway made every
parameter one); ResponseInfo cells apply; a second document is a problem (Kernel Gateway merged
them key by key, the last ``paths`` replacing the first).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

import nbformat
import yaml

from .parser import (
    DEFAULT_COMMENT_PREFIXES,
    VERBS,
    Endpoint,
    ParsedNotebook,
    ParseProblem,
    cell_source,
    check_path,
    join_cells,
    opened,
    order_endpoints,
)

_FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)
_TEMPLATE = re.compile(r"\{([^{}/]+)\}")
_LOOKS_LIKE_API = re.compile(r"""["']?\b(openapi|swagger)["']?\s*:""")


def api_document(source: str) -> dict[str, Any] | None:
    """The OpenAPI or Swagger document in a cell's source (a fenced block, or the whole source)."""
    return _api_document(source)[0]


def _api_document(source: str) -> tuple[dict[str, Any] | None, str | None]:
    """(the document, None), or (None, why a text that looks like one does not parse)."""
    why = None
    for text in [*_FENCE.findall(source), source]:
        for load in (json.loads, yaml.safe_load):
            try:
                found = load(text)
            except (ValueError, yaml.YAMLError) as exc:
                # Say the error of the syntax the text is written in: JSON for "{...", else YAML.
                is_json = text.lstrip().startswith("{")
                if _LOOKS_LIKE_API.search(text) and why is None and (load is json.loads) == is_json:
                    why = str(exc).splitlines()[0][:200]
                continue
            if isinstance(found, dict) and ("openapi" in found or "swagger" in found):
                return found, None
    return None, why


def parse_openapi_notebook(
    nb: nbformat.NotebookNode | str | Path, comment_prefixes: Mapping[str, str] = DEFAULT_COMMENT_PREFIXES
) -> ParsedNotebook:
    """Parse a notebook whose API is described by a document in one of its cells (see the module
    docstring). Problems (no document, operations without a cell, cells naming no operation) are in
    ``problems``; raises what ``read_notebook`` raises for a path."""
    path, nb, language, kernelspec = opened(nb)
    prefix = re.escape(comment_prefixes.get(language, "#"))
    sources = [cell_source(c) for c in nb.cells]
    problems: list[ParseProblem] = []
    document, document_cell = None, -1
    for index, source in enumerate(sources):
        found, why = _api_document(source)
        if found is None:
            if why is not None:
                problems.append(
                    ParseProblem(
                        index, f"the cell looks like an API document but does not parse: {why}", "api-document"
                    )
                )
            continue
        if document is None:
            document, document_cell = found, index
        else:
            problems.append(
                ParseProblem(index, f"a second API document (the first is in cell {document_cell})", "api-document")
            )
    if document is None:
        problems.append(
            ParseProblem(0, "no cell holds an OpenAPI 3 or Swagger 2.0 document (api: openapi)", "api-document")
        )
        return ParsedNotebook(path, language or "python", kernelspec, prefix, (), (), (), tuple(problems))
    operations = _operations(document, document_cell, problems)
    long_form = re.compile(rf"^{prefix}\s*(ResponseInfo\s+)?operationId:\s*(\S+)")
    short_form = re.compile(rf"^{prefix}\s*(ResponseInfo\s+)?(\S+)\s*$")
    code: dict[str, list[int]] = {}
    info: dict[str, list[int]] = {}
    seeds: list[int] = []
    for index, cell in enumerate(nb.cells):
        if cell.get("cell_type") != "code" or index == document_cell:
            continue
        first = sources[index].split("\n", 1)[0]
        match = long_form.match(first)
        if match is None:
            match = short_form.match(first)
            if match is None or match.group(2) not in operations:
                seeds.append(index)
                continue
        operation_id = match.group(2)
        if operation_id not in operations:
            known = ", ".join(sorted(operations)) or "none"
            problems.append(
                ParseProblem(
                    index, f"no operation {operation_id!r} in the API document (it has: {known})", "operation-unknown"
                )
            )
            continue
        (info if match.group(1) else code).setdefault(operation_id, []).append(index)
    endpoints = []
    for operation_id, (method, route, key) in operations.items():
        if operation_id not in code:
            problems.append(
                ParseProblem(
                    document_cell,
                    f"operation {operation_id!r} ({method} {route}) has no cell",
                    "operation-without-cell",
                )
            )
            continue
        infos = info.get(operation_id)
        endpoints.append(
            Endpoint(
                method=method,
                path=route,
                source=join_cells([sources[i] for i in code[operation_id]]),
                cell_indices=tuple(code[operation_id]),
                params=tuple(seg[1:] for seg in route.split("/") if seg.startswith(":")),
                response_info=join_cells([sources[i] for i in infos]) if infos else None,
                response_info_cells=tuple(infos or ()),
                description=_description(document, key),
                operation=key,
            )
        )
    ordered = order_endpoints(endpoints)
    return ParsedNotebook(
        path=path,
        language=language or "python",
        kernelspec=kernelspec,
        comment_prefix=comment_prefixes.get(language, "#"),
        endpoints=tuple(ordered),
        seed_cells=tuple(sources[i] for i in seeds),
        seed_cell_indices=tuple(seeds),
        problems=tuple(problems),
        orphan_response_infos=tuple(f"operationId {i}" for i in info if i not in code),
        source_endpoints=MappingProxyType({e.annotation: e for e in ordered}),
        api_document=MappingProxyType(document),
        code_cells=MappingProxyType({i: sources[i] for i in sorted([*seeds, *_served(code), *_served(info)])}),
    )


def _served(cells: Mapping[str, list[int]]) -> list[int]:
    return [index for indices in cells.values() for index in indices]


def _operations(
    document: dict[str, Any], cell: int, problems: list[ParseProblem]
) -> dict[str, tuple[str, str, tuple[str, str]]]:
    """operationId -> (VERB, route with :params, (path key, method key)) of every operation."""
    found: dict[str, Any] = {}
    paths = document.get("paths")
    if not isinstance(paths, dict):
        return found
    for path_key, item in paths.items():
        if not isinstance(item, dict):
            continue
        for method_key, operation in item.items():
            verb = str(method_key).upper()
            if verb not in VERBS or not isinstance(operation, dict):
                continue  # parameters, servers, summary...; HEAD/OPTIONS/TRACE are the gateway's own
            route = _TEMPLATE.sub(r":\1", str(path_key))
            problem = check_path(route)
            operation_id = operation.get("operationId")
            if problem is not None:
                problems.append(ParseProblem(cell, f"{verb} {path_key}: {problem}", "annotation-path"))
            elif not isinstance(operation_id, str) or not operation_id:
                problems.append(
                    ParseProblem(
                        cell,
                        f"{verb} {path_key} has no operationId: no cell can be annotated for it",
                        "operation-id-missing",
                    )
                )
            elif operation_id in found:
                problems.append(
                    ParseProblem(cell, f"operationId {operation_id!r} is used twice", "operation-id-duplicate")
                )
            else:
                found[operation_id] = (verb, route, (str(path_key), str(method_key)))
    return found


def _description(document: dict[str, Any], key: tuple[str, str]) -> str | None:
    operation = document["paths"][key[0]][key[1]]
    text = operation.get("description") or operation.get("summary")
    return text if isinstance(text, str) else None
