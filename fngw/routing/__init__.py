"""From manifest and notebooks to the routes and kernel pools the gateway serves.

``plan_routes`` reads every notebook the manifest names, applies the endpoint overrides, orders the
routes and decides which pools exist: one shared pool per notebook, plus one for each endpoint that
has a ``pool`` of its own. Everything it finds wrong is a located ``Problem``. It starts no process.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from fngw.contracts.openapi_source import ApiDocument
from fngw.manifest import (
    EndpointSettings,
    JsonPath,
    Manifest,
    NotebookSettings,
    PoolSettings,
    Problem,
    ProblemReport,
    join_url,
)
from fngw.notebook import Endpoint, NotebookError, ParsedNotebook, parse_notebook
from fngw.notebook.locate import CellLocator
from fngw.notebook.openapi_cells import parse_openapi_notebook
from fngw.notebook.parser import ParseProblem, path_shape, route_sort_key
from fngw.notebook.syntax import python_syntax_errors

# URL prefixes (below base_url) that belong to the gateway itself.
GATEWAY_URL_PREFIX = "/_fngw"
KERNEL_API_PREFIXES = ("/api", "/kernelspecs")


@dataclass(frozen=True)
class PoolSpec:
    """A pool of identical kernels: which kernelspec, environment and seed cells, and how many."""

    id: str
    notebook: str
    kernel: str
    language: str
    env: Mapping[str, str]
    seed_cells: tuple[str, ...]
    seed_cell_indices: tuple[int, ...]
    settings: PoolSettings


@dataclass(frozen=True)
class Route:
    """One served endpoint: the full URL template (``:name`` parameters), its code and settings."""

    method: str
    path: str
    notebook: str
    endpoint: Endpoint
    settings: EndpointSettings
    pool_id: str


@dataclass(frozen=True)
class RoutePlan:
    routes: tuple[Route, ...]
    pools: Mapping[str, PoolSpec]
    notebooks: Mapping[str, ParsedNotebook] = field(default_factory=lambda: MappingProxyType({}))


@dataclass
class PlanResult:
    plan: RoutePlan
    problems: list[Problem]


def display_path(path: Path, manifest: Manifest) -> str:
    """``path`` relative to the manifest's folder, as its author would write it; absolute when
    outside it (so a manifest written elsewhere, as `fngw serve`'s is, names the real file)."""
    relative = os.path.relpath(path, manifest.path.parent)
    return str(path) if relative.startswith("..") else relative


def notebook_problem(report: ProblemReport, where: JsonPath, path: Path, error: NotebookError) -> None:
    """An unreadable notebook: located in the notebook itself when its JSON breaks at a known
    place (``nb.ipynb:3:5``) or it is JSON but not a valid notebook (at the cell at fault, or at
    the top of the file), else (missing, unreadable) at the manifest's ``where``."""
    if error.line is not None and error.col is not None:
        problem = Problem(str(path), error.line, error.col, "$", str(error), "notebook-unreadable")
        report.problems.append(problem)
        return
    if error.where is not None:
        at = CellLocator(path).locate(error.cell) if error.cell is not None else None
        line, col = at or (1, 1)
        report.problems.append(Problem(str(path), line, col, error.where, str(error), "notebook-unreadable"))
        return
    report.add(where, f"{display_path(path, report.manifest)}: {error}", "notebook-unreadable")


def cell_problem(
    report: ProblemReport,
    where: JsonPath,
    notebook: ParsedNotebook,
    locator: CellLocator | None,
    found: ParseProblem,
    severity: str = "error",
) -> None:
    """A problem in a cell, located in the notebook file (``nb.ipynb:12:9``) when the file says
    where the cell's source is, else at the manifest's ``where``."""
    at = locator.locate(found.cell_index, found.line, found.col) if locator is not None else None
    if at is None or notebook.path is None:
        report.add(where, f"cell {found.cell_index}: {found.message}", found.rule, severity)
        return
    path = f"cells[{found.cell_index}].source"
    report.problems.append(Problem(str(notebook.path), *at, path, found.message, found.rule, severity))


SYNTAX_RULE = "cell-syntax"


def syntax_problems(report: ProblemReport, plan: RoutePlan) -> None:
    """Python cells a kernel could not compile (``cell-syntax``), located in their notebook.
    Warnings: Kernel Gateway serves such a cell (its request answers 500 with the SyntaxError) and
    so does fngw; ``server.watch`` refuses to reload onto one that was not there before."""
    compiled: set[Path] = set()  # a notebook the manifest serves twice is reported once
    for name, notebook in plan.notebooks.items():
        if notebook.language != "python" or not notebook.code_cells or notebook.path in compiled:
            continue
        if notebook.path is not None:
            compiled.add(notebook.path)
        errors = python_syntax_errors(notebook.code_cells)
        locator = CellLocator(notebook.path) if errors and notebook.path is not None else None
        for error in errors:
            found = ParseProblem(error.cell_index, error.message, SYNTAX_RULE, error.line, error.col)
            cell_problem(report, ("notebooks", name, "path"), notebook, locator, found, "warning")


def pool_id(notebook: str, endpoint: Endpoint | None = None) -> str:
    return notebook if endpoint is None else f"{notebook}:{endpoint.annotation}"


def plan_routes(manifest: Manifest) -> PlanResult:
    """Parse the manifest's notebooks and lay out routes and pools."""
    report = ProblemReport(manifest)
    problem = report.add

    parsed: dict[str, ParsedNotebook] = {}
    routes: list[Route] = []
    pools: dict[str, PoolSpec] = {}
    for name, nb in manifest.notebooks.items():
        where: JsonPath = ("notebooks", name)
        try:
            notebook = parse_openapi_notebook(nb.path) if nb.api == "openapi" else parse_notebook(nb.path)
        except NotebookError as exc:
            notebook_problem(report, (*where, "path"), nb.path, exc)
            continue
        parsed[name] = notebook
        kernel = _notebook_problems(report, where, nb, notebook)
        if kernel is None:
            continue

        shared = PoolSpec(
            id=pool_id(name),
            notebook=name,
            kernel=kernel,
            language=notebook.language,
            env=nb.env,
            seed_cells=notebook.seed_cells,
            seed_cell_indices=notebook.seed_cell_indices,
            settings=nb.pool,
        )
        document = ApiDocument(notebook.api_document, nb.path.as_uri()) if notebook.api_document else None
        for endpoint in notebook.endpoints:
            settings = nb.endpoint(endpoint.annotation)
            if document is not None and endpoint.operation is not None:
                if settings.contract is not None:
                    at = (*where, "endpoints", endpoint.annotation)
                    message = "with api: openapi, the notebook's API document declares requests and responses"
                    problem(at, message, "contract-in-document", key=True)
                settings = dataclasses.replace(settings, contract=document.contract(*endpoint.operation))
            if settings.own_pool:
                pid = pool_id(name, endpoint)
                pools[pid] = dataclasses.replace(shared, id=pid, settings=settings.pool)
            else:
                pid = shared.id
                pools[pid] = shared
            full = join_url(manifest.server.base_url, nb.mount, endpoint.path)
            routes.append(Route(endpoint.method, full, name, endpoint, settings, pid))

    _check_collisions(manifest, routes, problem)
    ordered = sorted(routes, key=lambda r: route_sort_key(r.path))
    plan = RoutePlan(tuple(ordered), MappingProxyType(pools), MappingProxyType(parsed))
    return PlanResult(plan, report.problems)


def _notebook_problems(
    report: ProblemReport, where: JsonPath, nb: NotebookSettings, notebook: ParsedNotebook
) -> str | None:
    """Report what is wrong with one parsed notebook (its cells, orphan ResponseInfo cells, no
    endpoints, overrides naming no cell); return its kernelspec, None when it has none."""
    problem = report.add
    locator = CellLocator(notebook.path) if notebook.problems and notebook.path is not None else None
    for p in notebook.problems:
        cell_problem(report, (*where, "path"), notebook, locator, p)
    for annotation in notebook.orphan_response_infos:
        problem(
            (*where, "path"),
            f"ResponseInfo {annotation} has no endpoint cell",
            "response-info-orphan",
            severity="warning",
        )
    if not notebook.endpoints and not notebook.problems:
        problem(
            (*where, "path"),
            "the notebook has no annotated endpoint cells ('# GET /path')",
            "notebook-no-endpoints",
            severity="warning",
        )
    kernel = nb.kernel or notebook.kernelspec
    if kernel is None:
        problem(
            where,
            "no kernel: the notebook has no kernelspec metadata and the manifest names none "
            "(set kernel here or in defaults)",
            "kernel-unknown",
            key=True,
        )
        return None
    known = {e.annotation for e in notebook.endpoints}
    for annotation in nb.overrides:
        if annotation not in known:
            hint = difflib.get_close_matches(annotation, sorted(known), n=1)
            message = f"no cell is annotated {annotation!r}"
            listing = ", ".join(sorted(known)) or "none"
            message += f"; did you mean {hint[0]!r}?" if hint else f" (annotated: {listing})"
            problem((*where, "endpoints", annotation), message, "endpoint-unknown", key=True)
    return kernel


def _check_collisions(manifest: Manifest, routes: list[Route], problem: Callable[..., None]) -> None:
    base = manifest.server.base_url
    reserved = [join_url(base, GATEWAY_URL_PREFIX)]
    if manifest.kernel_api is not None:
        reserved += [join_url(base, p) for p in KERNEL_API_PREFIXES]
    for nb in manifest.notebooks.values():
        mount = join_url(base, nb.mount)
        reserved.append(join_url(mount, "_api"))  # swagger.json, and the source when download is on
        if nb.static is not None:
            reserved.append(join_url(mount, "public"))
    seen: dict[tuple[str, str], Route] = {}
    for route in routes:
        where: JsonPath = ("notebooks", route.notebook)
        for prefix in reserved:
            if route.path == prefix or route.path.startswith(prefix + "/"):
                mount_path: JsonPath = (*where, "mount")
                at: JsonPath = mount_path if mount_path in manifest.source.values else (*where, "path")
                problem(
                    at,
                    f"{route.method} {route.path} is inside {prefix}, which the gateway serves itself",
                    "route-reserved",
                )
                break
        key = (route.method, path_shape(route.path))
        other = seen.get(key)
        if other is not None:
            same = other.notebook == route.notebook
            first = f"{other.method} {other.path}" + ("" if same else f" of notebook {other.notebook!r}")
            problem(
                where,
                f"{route.method} {route.path} collides with {first}: both match the same URLs",
                "route-collision",
                key=True,
            )
        else:
            seen[key] = route
