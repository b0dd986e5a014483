"""Everything `fngw validate` checks, in one place, so the gateway refuses exactly what it reports.

Order: strict YAML and the JSON Schema (manifest), then meaning (notebooks, endpoint overrides,
route collisions), then the machine (kernelspecs installed, token secrets readable).
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

from fngw.auth import TokenUnavailable, read_token
from fngw.kernels import SeedCell, installed_kernelspecs, match_kernelspec
from fngw.manifest import JsonPath, Manifest, Problem, ProblemReport, load_manifest
from fngw.manifest.environment import unset_variables
from fngw.notebook import NotebookError, read_notebook
from fngw.routing import RoutePlan, display_path, notebook_problem, plan_routes, syntax_problems
from fngw.telemetry.logs import FORMATS as LOG_FORMATS
from fngw.telemetry.tracing import TracingUnavailable, tracing_config


@dataclass(frozen=True)
class KernelApiSeed:
    """The code cells of ``kernel_api.seed``, run on every kernel API kernel of ``kernel`` (every
    kernel when None: the seed notebook names no kernelspec)."""

    cells: tuple[SeedCell, ...] = ()
    kernel: str | None = None


@dataclass(frozen=True)
class Deployment:
    """A valid manifest, the routes and pools it lays out, and the kernel API's seed: everything
    the gateway serves, read and checked before any process starts."""

    manifest: Manifest
    plan: RoutePlan
    kernel_api_seed: KernelApiSeed = KernelApiSeed()

    def sources(self) -> set[Path]:
        """The files the deployment was read from, absolute: the manifest, its notebooks, the kernel
        API's seed notebook, and the schema files its contracts' ``$ref``s reach. What
        ``server.watch`` watches."""
        manifest = self.manifest
        files = {manifest.path, *(nb.path for nb in manifest.notebooks.values())}
        if manifest.kernel_api is not None and manifest.kernel_api.seed is not None:
            files.add(manifest.kernel_api.seed)
        for route in self.plan.routes:
            contract = route.settings.contract
            if contract is not None:
                files.update(_file_uris(contract.schemas.registry.keys()))
        return {Path(os.path.abspath(f)) for f in files}


@dataclass
class CheckResult:
    deployment: Deployment | None
    problems: list[Problem]

    @property
    def ok(self) -> bool:
        return self.deployment is not None


def check_deployment(
    path: str | Path,
    *,
    offline: bool = False,
    strict: bool = False,
    environ: Mapping[str, str] = os.environ,
    compile_cells: bool = True,
) -> CheckResult:
    """Load and check a manifest. ``offline``: a missing kernelspec is a warning, not an error.
    ``strict``: an unreadable token secret is an error, not a warning. ``compile_cells``: Python
    cells that cannot compile are warned of (``cell-syntax``); a gunicorn worker skips this, as the
    master's check or the watcher's did it (it costs an IPython import). Raises ``OSError`` only
    when the manifest file itself cannot be read."""
    loaded = load_manifest(path)
    if loaded.manifest is None:
        return CheckResult(None, loaded.problems)
    manifest = loaded.manifest
    problems = list(loaded.problems)
    planned = plan_routes(manifest)
    problems.extend(planned.problems)
    if compile_cells:
        report = ProblemReport(manifest)
        syntax_problems(report, planned.plan)
        problems.extend(report.problems)
    problems.extend(_machine_problems(manifest, planned.plan, offline=offline, strict=strict, environ=environ))
    problems.sort(key=lambda p: (p.file, p.line, p.col, p.rule))
    if any(p.severity == "error" for p in problems):
        return CheckResult(None, problems)
    return CheckResult(Deployment(manifest, planned.plan, _kernel_api_seed(manifest)), problems)


def _file_uris(uris: Iterable[str]) -> Iterator[Path]:
    """The local files among ``uris`` (``file:`` URIs without their fragment)."""
    for uri in uris:
        parsed = urlparse(uri)
        if parsed.scheme == "file":
            yield Path(unquote(parsed.path))


def _kernel_api_seed(manifest: Manifest) -> KernelApiSeed:
    """The seed notebook's code cells (it was read and checked with the rest)."""
    api = manifest.kernel_api
    if api is None or api.seed is None:
        return KernelApiSeed()
    nb = read_notebook(api.seed)
    cells = tuple(SeedCell(i, "".join(c.source)) for i, c in enumerate(nb.cells) if c.cell_type == "code")
    return KernelApiSeed(cells, (nb.metadata.get("kernelspec") or {}).get("name"))


def _machine_problems(
    manifest: Manifest, plan: RoutePlan | None, *, offline: bool, strict: bool, environ: Mapping[str, str]
) -> list[Problem]:
    """What this machine lacks for the manifest: kernelspecs (warnings when ``offline``), static
    folders, the kernel API's seed notebook, token secrets (errors when ``strict``)."""
    report = ProblemReport(manifest)
    _kernelspec_problems(report, plan, "warning" if offline else "error")
    for name, nb in manifest.notebooks.items():
        if nb.static is not None and not nb.static.is_dir():
            where: JsonPath = ("notebooks", name, "static")
            report.add(where, f"{display_path(nb.static, manifest)} is not a directory", "static-missing", "error")
    api = manifest.kernel_api
    if api is not None and api.seed is not None:
        try:
            read_notebook(api.seed)
        except NotebookError as exc:
            where = ("kernel_api", "seed")
            notebook_problem(report, where, api.seed, exc)
    token_severity = "error" if strict else "warning"
    for name, source in manifest.auth.tokens.items():
        try:
            read_token(source, environ)
        except TokenUnavailable as exc:
            where = ("auth", "tokens", name)
            report.add(where, f"token {name!r}: {exc}", "token-unavailable", token_severity, key=True)
    for where, url in _service_urls(manifest):
        missing = unset_variables(url, environ)
        if missing:
            names = ", ".join(f"${{{n}}}" for n in missing)
            message = f"the URL names {names}, not set in this environment (the gateway will not start without it)"
            report.add(where, message, "variable-unset", token_severity)
    _tracing_problems(report, environ)
    log_format = environ.get("FNGW_LOG_FORMAT")
    if log_format and log_format.strip().lower() not in LOG_FORMATS:
        message = f"FNGW_LOG_FORMAT={log_format!r} is not one of {', '.join(LOG_FORMATS)}"
        report.add(("server", "log_format"), message, "log-format")  # located at the nearest key there is
    callbacks = manifest.jobs.callbacks if manifest.jobs is not None else None
    if callbacks is not None:  # the gateway cannot sign callbacks without it: it would not start
        try:
            read_token(callbacks.secret, environ)
        except TokenUnavailable as exc:
            where = ("jobs", "callbacks", "secret")
            report.add(where, f"the callback secret: {exc}", "token-unavailable", token_severity)
    return report.problems


def _tracing_problems(report: ProblemReport, environ: Mapping[str, str]) -> None:
    """Tracing that is on (``server.tracing`` or ``OTEL_TRACES_EXPORTER``) needs the SDK installed
    and an exporter fngw knows; looked up without importing it."""
    where: JsonPath = ("server", "tracing") if report.manifest.server.tracing is not None else ()
    try:
        config = tracing_config(report.manifest.server.tracing, environ)
    except TracingUnavailable as exc:
        report.add(where, str(exc), "tracing-unavailable")
        return
    if config is not None and importlib.util.find_spec("opentelemetry.sdk") is None:
        message = "tracing is on, but the OpenTelemetry SDK is not installed: pip install 'fngw[tracing]'"
        report.add(where, message, "tracing-unavailable")


def _service_urls(manifest: Manifest) -> Iterator[tuple[JsonPath, str]]:
    """The manifest's service URLs, which may name environment variables (``fngw.manifest.environment``)."""
    if manifest.kernel_api is not None and manifest.kernel_api.registry is not None:
        yield ("kernel_api", "registry"), manifest.kernel_api.registry
    store = manifest.jobs.store if manifest.jobs is not None else None
    if store is not None and store.url is not None:
        yield ("jobs", "store"), store.url


def _kernelspec_problems(report: ProblemReport, plan: RoutePlan | None, severity: str) -> None:
    """Every kernelspec the manifest and its notebooks name must be installed (any case)."""
    manifest = report.manifest
    installed = installed_kernelspecs()

    def need_kernel(name: str, path: JsonPath, *, key: bool = False) -> None:
        if match_kernelspec(name, installed) is None:
            listing = ", ".join(sorted(installed)) or "none"
            message = f"kernelspec {name!r} is not installed (installed: {listing})"
            report.add(path, message, "kernelspec-missing", severity, key=key)

    if manifest.defaults.kernel is not None:
        need_kernel(manifest.defaults.kernel, ("defaults", "kernel"))
    kernels = {spec.notebook: spec.kernel for spec in (plan.pools.values() if plan else ())}  # one per notebook
    for name, kernel in sorted(kernels.items()):
        where: JsonPath = ("notebooks", name)
        at = (*where, "kernel") if (*where, "kernel") in manifest.source.values else where
        need_kernel(kernel, at, key=at == where)
    api = manifest.kernel_api
    if api is not None:
        for i, allowed in enumerate(api.allowed_kernels or ()):
            need_kernel(allowed, ("kernel_api", "allowed_kernels", i))
        if ("kernel_api", "default_kernel") in manifest.source.values:
            need_kernel(api.default_kernel, ("kernel_api", "default_kernel"))
