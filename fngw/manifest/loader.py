"""Reading a manifest file: strict YAML, then the JSON Schema, then typed settings.

Every problem is located (file, line, column, JSON path) and named by a rule. Schema rules are the
JSON Schema keyword that failed (``additionalProperties``, ``type``, ...); the rest are ours.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

from fngw.package_data import schema_path

from .contracts import build_contract
from .model import (
    PUBLIC,
    STREAM_BUFFER_FLOOR,
    Access,
    AsyncSettings,
    AuthSettings,
    CallbackSettings,
    CorsSettings,
    CullSettings,
    DefaultSettings,
    EndpointSettings,
    JobSettings,
    JobStoreLocation,
    KernelApiSettings,
    Manifest,
    NotebookSettings,
    PoolSettings,
    ServerSettings,
    StreamSettings,
    TokenSource,
    TracingSettings,
)
from .problems import Problem
from .schema_problems import schema_problems
from .schemas import ManifestSchemas
from .units import parse_duration, parse_size
from .yamlsource import JsonPath, SourceMap, json_path, load_yaml


@dataclass
class LoadResult:
    """A manifest (``None`` when it has errors) and every problem found."""

    manifest: Manifest | None
    problems: list[Problem]


@cache
def manifest_schema() -> dict[str, Any]:
    """The manifest's JSON Schema (draft 2020-12) as shipped in ``schemas/``."""
    return json.loads(schema_path().read_text(encoding="utf-8"))


def load_manifest(path: str | Path) -> LoadResult:
    """Load and check one manifest file; never raises for problems in the file itself.

    An unreadable file raises ``OSError`` (the caller decides: `fngw validate` exits 2).
    """
    path = Path(path)
    raw = path.read_bytes()
    display = str(path)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        return LoadResult(None, [Problem(display, line, 1, "$", "the file is not valid UTF-8", "yaml-encoding")])
    loaded = load_yaml(text, display)
    problems = list(loaded.problems)
    if loaded.data is None and problems:  # no document at all; a `null` document is judged below
        return LoadResult(None, _sorted(problems))
    # Report schema problems too, except where the YAML problem already explains the value.
    explained = {p.path for p in problems}
    problems.extend(
        p for p in schema_problems(manifest_schema(), loaded.data, loaded.source, display) if p.path not in explained
    )
    if problems:
        return LoadResult(None, _sorted(problems))
    builder = _ManifestBuilder(path.resolve(), loaded.data, loaded.source, display)
    manifest = builder.build()
    problems.extend(builder.problems)
    return LoadResult(None if builder.problems else manifest, _sorted(problems))


def _sorted(problems: list[Problem]) -> list[Problem]:
    return sorted(problems, key=lambda p: (p.file, p.line, p.col, p.rule))


# --- typed settings -------------------------------------------------------------------------------


def _tracing(raw: Any) -> TracingSettings | None:
    """server.tracing: None when absent (the OTEL_* environment decides), off for ``false``."""
    if raw is None:
        return None
    if isinstance(raw, bool):
        return TracingSettings(enabled=raw)
    ratio = raw.get("sample_ratio")
    return TracingSettings(
        exporter=raw.get("exporter"),
        endpoint=raw.get("endpoint"),
        service_name=raw.get("service_name"),
        sample_ratio=None if ratio is None else float(ratio),
    )


def _frozen(mapping: Mapping) -> Mapping:
    return MappingProxyType(dict(mapping))


def join_url(*parts: str) -> str:
    """Join URL path pieces with single slashes; the result starts with '/' and has no trailing '/'."""
    joined = "/".join(p.strip("/") for p in parts if p.strip("/"))
    return "/" + joined


class _ManifestBuilder:
    """Turns schema-valid data into a ``Manifest``, checking references the schema cannot."""

    def __init__(self, path: Path, data: dict[str, Any], source: SourceMap, display: str):
        self.path = path
        self.base_dir = path.parent
        self.data = data
        self.source = source
        self.display = display
        self.problems: list[Problem] = []
        self.token_names: set[str] = set()
        self.async_callbacks: list[JsonPath] = []  # checked against jobs.callbacks once read
        self.schemas = ManifestSchemas(path, display, source, self.problems.append)

    def error(self, path: JsonPath, message: str, rule: str, *, key: bool = False) -> None:
        loc = self.source.key(path) if key else self.source.value(path)
        self.problems.append(Problem(self.display, loc.line, loc.col, json_path(path), message, rule))

    def local_path(self, value: str) -> Path:
        return (self.base_dir / value).resolve()

    def build(self) -> Manifest:
        data = self.data
        auth = self.auth(data.get("auth") or {})
        defaults = self.defaults(data.get("defaults") or {})
        notebooks = {
            name: self.notebook(name, raw, defaults, auth.default)
            for name, raw in (data.get("notebooks") or {}).items()
        }
        kernel_api = None
        if "kernel_api" in data:
            kernel_api = self.kernel_api(data["kernel_api"] or {}, auth.default)
        raw_jobs = data.get("jobs", {})
        jobs = self.jobs(raw_jobs or {}) if raw_jobs is not False else None
        if jobs is None:
            for name, nb in notebooks.items():
                for annotation, ep in nb.overrides.items():
                    if ep.asynchronous.enabled:
                        where = ("notebooks", name, "endpoints", annotation, "async")
                        message = "async endpoints need jobs, which `jobs: false` turns off"
                        self.error(where, message, "async-without-jobs")
        return Manifest(
            path=self.path,
            version=data["version"],
            server=self.server(data.get("server") or {}),
            auth=auth,
            defaults=defaults,
            notebooks=_frozen(notebooks),
            kernel_api=kernel_api,
            jobs=jobs,
            source=self.source,
        )

    def server(self, raw: dict[str, Any]) -> ServerSettings:
        cors = None
        if "cors" in raw:
            c = raw["cors"] or {}
            origin = c.get("allow_origin", "*")
            cors = CorsSettings(
                allow_origin=("*",) if origin == "*" else tuple(origin),
                allow_methods=tuple(c.get("allow_methods", ())),
                allow_headers=tuple(c.get("allow_headers", ())),
                expose_headers=tuple(c.get("expose_headers", ())),
                allow_credentials=bool(c.get("allow_credentials", False)),
                max_age=parse_duration(c["max_age"]) if "max_age" in c else None,
            )
            if cors.allow_credentials and cors.allow_origin == ("*",):
                self.error(
                    ("server", "cors", "allow_credentials"),
                    'browsers refuse credentials with allow_origin "*"; list the origins instead',
                    "cors-credentials-wildcard",
                )
        base_url = raw.get("base_url", "/")
        return ServerSettings(
            base_url=join_url(base_url),
            max_body=parse_size(raw["max_body"]) if "max_body" in raw else ServerSettings.max_body,
            max_response=parse_size(raw["max_response"]) if "max_response" in raw else ServerSettings.max_response,
            max_websocket_queue=(
                parse_size(raw["max_websocket_queue"])
                if "max_websocket_queue" in raw
                else ServerSettings.max_websocket_queue
            ),
            cors=cors,
            log_format=raw.get("log_format", ServerSettings.log_format),
            metrics=raw.get("metrics", ServerSettings.metrics),
            docs=raw.get("docs", ServerSettings.docs),
            watch=raw.get("watch", ServerSettings.watch),
            tracing=_tracing(raw.get("tracing")),
        )

    def auth(self, raw: dict[str, Any]) -> AuthSettings:
        tokens = {}
        for name, src in (raw.get("tokens") or {}).items():
            tokens[name] = TokenSource(
                name=name,
                env=src.get("env"),
                file=self.local_path(src["file"]) if "file" in src else None,
            )
        self.token_names = set(tokens)
        default = self.access(raw.get("default", "public"), ("auth", "default")) if raw else PUBLIC
        return AuthSettings(tokens=_frozen(tokens), default=default)

    def access(self, raw: Any, path: JsonPath) -> Access:
        if raw == "public":
            return PUBLIC
        for i, name in enumerate(raw):
            if name not in self.token_names:
                declared = ", ".join(sorted(self.token_names)) or "none"
                self.error(
                    (*path, i),
                    f"token {name!r} is not declared under auth.tokens (declared: {declared})",
                    "auth-unknown-token",
                )
        return Access(public=False, tokens=tuple(raw))

    def pool(self, raw: dict[str, Any] | None, base: PoolSettings) -> PoolSettings:
        raw = raw or {}
        return PoolSettings(
            size=raw.get("size", base.size),
            max_queue=raw.get("max_queue", base.max_queue),
            queue_timeout=parse_duration(raw["queue_timeout"]) if "queue_timeout" in raw else base.queue_timeout,
        )

    def defaults(self, raw: dict[str, Any]) -> DefaultSettings:
        builtin = DefaultSettings()
        return DefaultSettings(
            kernel=raw.get("kernel"),
            timeout=parse_duration(raw["timeout"]) if "timeout" in raw else builtin.timeout,
            pool=self.pool(raw.get("pool"), builtin.pool),
            tracebacks=bool(raw.get("tracebacks", builtin.tracebacks)),
            validate_responses=bool(raw.get("validate_responses", builtin.validate_responses)),
        )

    def notebook(
        self, name: str, raw: dict[str, Any], defaults: DefaultSettings, default_auth: Access
    ) -> NotebookSettings:
        where = ("notebooks", name)
        timeout = parse_duration(raw["timeout"]) if "timeout" in raw else defaults.timeout
        pool = self.pool(raw.get("pool"), defaults.pool)
        auth = self.access(raw["auth"], (*where, "auth")) if "auth" in raw else default_auth
        tracebacks = bool(raw.get("tracebacks", defaults.tracebacks))
        validate_responses = bool(raw.get("validate_responses", defaults.validate_responses))
        overrides = {}
        for annotation, ep in (raw.get("endpoints") or {}).items():
            ep = ep or {}
            ep_where = (*where, "endpoints", annotation)
            overrides[annotation] = EndpointSettings(
                timeout=parse_duration(ep["timeout"]) if "timeout" in ep else timeout,
                pool=self.pool(ep.get("pool"), pool),
                auth=self.access(ep["auth"], (*ep_where, "auth")) if "auth" in ep else auth,
                own_pool="pool" in ep,
                tracebacks=tracebacks,
                validate_responses=bool(ep.get("validate_responses", validate_responses)),
                contract=build_contract(ep, annotation, ep_where, self.schemas, self.source, self.display, self.error),
                stream=self.stream(ep.get("stream"), (*ep_where, "stream")),
                asynchronous=self.asynchronous(ep.get("async"), (*ep_where, "async")),
            )
        mount = raw.get("mount", "/")
        return NotebookSettings(
            name=name,
            path=self.local_path(raw["path"]),
            mount=join_url(mount),
            kernel=raw.get("kernel", defaults.kernel),
            env=_frozen(raw.get("env") or {}),
            timeout=timeout,
            pool=pool,
            auth=auth,
            download=bool(raw.get("download", False)),
            static=self.local_path(raw["static"]) if "static" in raw else None,
            tracebacks=tracebacks,
            overrides=_frozen(overrides),
            validate_responses=validate_responses,
            api=raw.get("api", "annotations"),
        )

    def stream(self, raw: Any, where: JsonPath) -> StreamSettings:
        """endpoint.stream: absent or false (SSE/NDJSON only when asked), true, or settings."""
        if raw is None or raw is False:
            return StreamSettings()
        if raw is True:
            return StreamSettings(enabled=True)
        buffer = parse_size(raw["buffer"]) if "buffer" in raw else StreamSettings.buffer
        if buffer < STREAM_BUFFER_FLOOR:
            message = (
                "stream.buffer must be at least 1MiB: stream messages are up to 256 KiB, and a buffer holds several"
            )
            self.error((*where, "buffer"), message, "stream-buffer-too-small")
        return StreamSettings(
            enabled=bool(raw.get("enabled", True)),
            idle=parse_duration(raw["idle"]) if "idle" in raw else None,
            buffer=buffer,
        )

    def asynchronous(self, raw: Any, where: JsonPath) -> AsyncSettings:
        """endpoint.async: absent or false (jobs only when asked), true, or settings."""
        if raw is None or raw is False:
            return AsyncSettings()
        if raw is True:
            return AsyncSettings(enabled=True)
        if "callback" in raw:
            self.async_callbacks.append((*where, "callback"))
        return AsyncSettings(
            enabled=bool(raw.get("enabled", True)),
            timeout=parse_duration(raw["timeout"]) if "timeout" in raw else None,
            idempotent=bool(raw.get("idempotent", False)),
            callback=raw.get("callback"),
        )

    def jobs(self, raw: dict[str, Any]) -> JobSettings:
        """jobs: where they are kept and their limits; callbacks need their hosts allowed."""
        builtin = JobSettings()
        callbacks = None
        if "callbacks" in raw:
            c = raw["callbacks"]
            secret = c["secret"]
            callbacks = CallbackSettings(
                allow_hosts=tuple(host.lower() for host in c["allow_hosts"]),
                secret=TokenSource(
                    name="jobs.callbacks.secret",
                    env=secret.get("env"),
                    file=self.local_path(secret["file"]) if "file" in secret else None,
                ),
                retries=c.get("retries", 5),
            )
        for where in self.async_callbacks:
            url = self.source_value(where)
            if callbacks is None or not callbacks.allows(url):
                message = f"callback {url} goes to a host that jobs.callbacks.allow_hosts does not list"
                self.error(where, message, "callback-host-not-allowed")
        for name, least in (("ttl", 1.0), ("visibility", 1.0), ("timeout", 0.001)):
            if name in raw and parse_duration(raw[name]) < least:
                message = f"jobs.{name} must be at least {'1s' if least >= 1 else 'more than 0'}"
                self.error(("jobs", name), message, "job-duration-too-short")
        return JobSettings(
            store=self.job_store(raw["store"]) if "store" in raw else None,
            ttl=parse_duration(raw["ttl"]) if "ttl" in raw else builtin.ttl,
            max_queued=raw.get("max_queued", builtin.max_queued),
            max_result=parse_size(raw["max_result"]) if "max_result" in raw else builtin.max_result,
            timeout=parse_duration(raw["timeout"]) if "timeout" in raw else builtin.timeout,
            visibility=parse_duration(raw["visibility"]) if "visibility" in raw else builtin.visibility,
            admin=self.access(raw["admin"], ("jobs", "admin")) if "admin" in raw else None,
            callbacks=callbacks,
        )

    def job_store(self, url: str) -> JobStoreLocation:
        """``sqlite:///abs`` (an absolute path, as file: URLs write it), ``sqlite:rel`` (from the
        manifest's folder), or a redis URL kept as written."""
        if url.startswith(("redis://", "rediss://")):
            try:
                urlsplit(url).port  # noqa: B018 - raises for a port that is not a number
            except ValueError:
                shown = JobStoreLocation("redis", url=url).describe()  # without the password
                self.error(("jobs", "store"), f"{shown}: the port is not a number", "job-store-url")
            return JobStoreLocation(kind="redis", url=url)
        rest = url.removeprefix("sqlite:")
        if rest.startswith("///"):  # a file: URL's empty host (the schema refuses any other host)
            return JobStoreLocation(kind="sqlite", path=Path(rest[2:]))
        return JobStoreLocation(kind="sqlite", path=self.local_path(rest))

    def source_value(self, where: JsonPath) -> Any:
        node: Any = self.data
        for key in where:
            node = node[key]
        return node

    def kernel_api(self, raw: dict[str, Any], default_auth: Access) -> KernelApiSettings:
        where = ("kernel_api",)
        cull_raw = raw.get("cull") or {}
        builtin_cull = CullSettings()
        cull = CullSettings(
            idle=parse_duration(cull_raw["idle"]) if "idle" in cull_raw else None,
            interval=parse_duration(cull_raw["interval"]) if "interval" in cull_raw else builtin_cull.interval,
            connected=bool(cull_raw.get("connected", False)),
            busy=bool(cull_raw.get("busy", False)),
        )
        settings = KernelApiSettings(
            auth=self.access(raw["auth"], (*where, "auth")) if "auth" in raw else default_auth,
            list_kernels=bool(raw.get("list_kernels", False)),
            max_kernels=raw.get("max_kernels"),
            default_kernel=raw.get("default_kernel", KernelApiSettings.default_kernel),
            allowed_kernels=tuple(raw["allowed_kernels"]) if "allowed_kernels" in raw else None,
            prewarm=raw.get("prewarm", 0),
            launch_timeout=(
                parse_duration(raw["launch_timeout"]) if "launch_timeout" in raw else KernelApiSettings.launch_timeout
            ),
            seed=self.local_path(raw["seed"]) if "seed" in raw else None,
            env_whitelist=tuple(raw.get("env_whitelist", ())),
            cull=cull,
            registry=raw.get("registry"),
        )
        if settings.registry is not None:
            try:
                urlsplit(settings.registry).port  # noqa: B018 - raises for a port that is not a number
            except ValueError:
                shown = JobStoreLocation("redis", url=settings.registry).describe()  # without the password
                self.error((*where, "registry"), f"{shown}: the port is not a number", "registry-url")
        if settings.max_kernels is not None and settings.prewarm > settings.max_kernels:
            message = f"prewarm ({settings.prewarm}) exceeds max_kernels ({settings.max_kernels})"
            self.error((*where, "prewarm"), message, "prewarm-exceeds-max")
        allowed = settings.allowed_kernels
        # Kernelspec names are case-insensitive (jupyter_client folds them); loading starts nothing,
        # so this compares the names themselves rather than importing the kernels package.
        if allowed is not None and settings.default_kernel.casefold() not in {n.casefold() for n in allowed}:
            at = (*where, "default_kernel") if "default_kernel" in raw else where
            message = f"default_kernel {settings.default_kernel!r} is not in allowed_kernels"
            self.error(at, message, "default-kernel-not-allowed")
        return settings
