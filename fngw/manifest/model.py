"""The manifest as immutable, typed settings with inheritance already resolved.

Nothing downstream of the loader reads raw YAML dicts: durations are seconds (float), sizes bytes
(int), paths absolute, and every notebook and endpoint carries the full settings it runs with
(defaults -> notebook -> endpoint).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from urllib.parse import urlsplit

from fngw.contracts import Contract

from .yamlsource import SourceMap

EMPTY: Mapping = MappingProxyType({})

# A job's statuses (fngw.jobs), here too so that the command line offers them without importing jobs.
JOB_STATUSES = ("queued", "running", "succeeded", "failed", "cancelled", "expired")


@dataclass(frozen=True)
class Access:
    """Who may call: everyone, or a bearer of any one of the named tokens."""

    public: bool
    tokens: tuple[str, ...] = ()

    def describe(self) -> str:
        """public, or token:name,name (for logs and documents)."""
        return "public" if self.public else "token:" + ",".join(self.tokens)


PUBLIC = Access(public=True)


@dataclass(frozen=True)
class PoolSettings:
    """A pool's size (kernels), max_queue (requests that may wait) and queue_timeout (seconds)."""

    size: int = 1
    max_queue: int = 10
    queue_timeout: float = 10.0


@dataclass(frozen=True)
class CorsSettings:
    """server.cors: allowed origins, methods, headers, exposed headers, credentials, max_age (seconds)."""

    allow_origin: tuple[str, ...] = ("*",)
    allow_methods: tuple[str, ...] = ()
    allow_headers: tuple[str, ...] = ()
    expose_headers: tuple[str, ...] = ()
    allow_credentials: bool = False
    max_age: float | None = None


@dataclass(frozen=True)
class TracingSettings:
    """server.tracing: OpenTelemetry traces. ``exporter`` is ``otlp`` (OTLP over HTTP to
    ``endpoint``), ``console`` or ``none``; ``sample_ratio`` is the share of new traces kept (a
    client's sampled ``traceparent`` is always followed). None fields defer to the OTEL_* variables."""

    enabled: bool = True
    exporter: str | None = None
    endpoint: str | None = None
    service_name: str | None = None
    sample_ratio: float | None = None


@dataclass(frozen=True)
class ServerSettings:
    """server: base_url, max_body/max_response/max_websocket_queue (bytes), cors, log_format, metrics,
    docs (the interactive API page), watch (reload on change), tracing (OpenTelemetry)."""

    base_url: str = "/"
    max_body: int = 10 * 1000**2
    max_response: int = 64 * 1024**2
    max_websocket_queue: int = 16 * 1024**2
    cors: CorsSettings | None = None
    log_format: str = "auto"  # text on a terminal, JSON otherwise
    metrics: bool = True
    docs: bool = True
    watch: bool = False  # reload when the manifest, a notebook or a schema file changes
    tracing: TracingSettings | None = None  # None: as the OTEL_* environment says (off when unset)


@dataclass(frozen=True)
class TokenSource:
    """Where the secret of a named token is read from; the secret itself is never stored here."""

    name: str
    env: str | None = None
    file: Path | None = None

    def describe(self) -> str:
        """Where the secret is read from, for messages (never the secret)."""
        return f"environment variable {self.env}" if self.env else f"file {self.file}"


@dataclass(frozen=True)
class AuthSettings:
    """auth: the named token sources and the default access rule."""

    tokens: Mapping[str, TokenSource] = field(default_factory=lambda: EMPTY)
    default: Access = PUBLIC


@dataclass(frozen=True)
class DefaultSettings:
    """defaults: kernel, timeout (seconds), pool, tracebacks and validate_responses inherited by every notebook."""

    kernel: str | None = None
    timeout: float = 60.0
    pool: PoolSettings = PoolSettings()
    tracebacks: bool = False
    validate_responses: bool = False


STREAM_BUFFER_FLOOR = 1024**2  # bytes: stream messages are up to 256 KiB; a buffer holds several


@dataclass(frozen=True)
class StreamSettings:
    """endpoint.stream: ``enabled`` (plain streaming for text clients), ``idle`` (seconds without
    output before the stream ends; None: no limit), ``buffer`` (bytes held for a slow reader)."""

    enabled: bool = False
    idle: float | None = None
    buffer: int = STREAM_BUFFER_FLOOR


NO_STREAM = StreamSettings()


@dataclass(frozen=True)
class AsyncSettings:
    """endpoint.async: ``enabled`` (every call becomes a job), ``timeout`` (seconds a job may run;
    None: jobs.timeout), ``idempotent`` (a job lost with its worker runs again once), ``callback``
    (a URL each finished job is POSTed to)."""

    enabled: bool = False
    timeout: float | None = None
    idempotent: bool = False
    callback: str | None = None


NOT_ASYNC = AsyncSettings()


@dataclass(frozen=True)
class EndpointSettings:
    """What one endpoint runs with. ``own_pool`` means it gets seeded kernels of its own;
    ``contract`` is what it declares about requests and responses (None: nothing)."""

    timeout: float
    pool: PoolSettings
    auth: Access
    own_pool: bool = False
    tracebacks: bool = False
    validate_responses: bool = False
    contract: Contract | None = None
    stream: StreamSettings = NO_STREAM
    asynchronous: AsyncSettings = NOT_ASYNC


@dataclass(frozen=True)
class NotebookSettings:
    """One notebook as served: path, mount, kernel, env, timeout (seconds), pool, auth, download,
    static, tracebacks, its endpoint overrides, validate_responses, and how its cells name
    endpoints (``api``)."""

    name: str
    path: Path
    mount: str
    kernel: str | None
    env: Mapping[str, str]
    timeout: float
    pool: PoolSettings
    auth: Access
    download: bool
    static: Path | None
    tracebacks: bool = False
    overrides: Mapping[str, EndpointSettings] = field(default_factory=lambda: EMPTY)
    validate_responses: bool = False
    api: str = "annotations"  # or "openapi": the notebook carries its API document

    def endpoint(self, annotation: str) -> EndpointSettings:
        """Settings of the endpoint annotated ``annotation`` ("GET /path"): its override or ours."""
        found = self.overrides.get(annotation)
        if found is not None:
            return found
        return EndpointSettings(
            timeout=self.timeout,
            pool=self.pool,
            auth=self.auth,
            tracebacks=self.tracebacks,
            validate_responses=self.validate_responses,
        )


@dataclass(frozen=True)
class CullSettings:
    """kernel_api.cull: idle and interval (seconds), and whether connected or busy kernels are culled too."""

    idle: float | None = None
    interval: float = 300.0
    connected: bool = False
    busy: bool = False


@dataclass(frozen=True)
class KernelApiSettings:
    """kernel_api: auth, list_kernels, max_kernels, default and allowed kernels, prewarm,
    launch_timeout (seconds), seed, env_whitelist, cull, registry (a redis URL or None)."""

    auth: Access = PUBLIC
    list_kernels: bool = False
    max_kernels: int | None = None
    default_kernel: str = "python3"
    allowed_kernels: tuple[str, ...] | None = None
    prewarm: int = 0
    launch_timeout: float = 60.0
    seed: Path | None = None
    env_whitelist: tuple[str, ...] = ()
    cull: CullSettings = CullSettings()
    registry: str | None = None  # a redis URL (may hold a password: never log it), or the instance's folder


@dataclass(frozen=True)
class JobStoreLocation:
    """Where jobs are kept: ``kind`` "sqlite" with an absolute ``path``, or "redis" with a ``url``
    (which may hold a password: never log it, see ``describe``)."""

    kind: str
    path: Path | None = None
    url: str | None = None

    def describe(self) -> str:
        """The location without credentials, for logs and messages."""
        if self.path is not None:
            return f"sqlite:{self.path}"
        scheme, _, rest = (self.url or "").partition("://")
        return f"{scheme}://{rest.rpartition('@')[2]}"


@dataclass(frozen=True)
class CallbackSettings:
    """jobs.callbacks: the hosts callbacks may reach, the HMAC key's source, retries after the first."""

    allow_hosts: tuple[str, ...]
    secret: TokenSource
    retries: int = 5

    def allows(self, url: str) -> bool:
        """Whether ``url`` is http(s) to a listed host: ``host``, ``host:port`` (that port only)
        or ``*.domain`` (its subdomains)."""
        if any(c <= " " or c == "\x7f" for c in url):  # spaces and controls: no client sends it as written
            return False
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return False
        if parts.username is not None or parts.password is not None:  # credentials would be stored
            return False
        try:
            port = parts.port
        except ValueError:
            return False
        host = parts.hostname.lower()
        for allowed in self.allow_hosts:
            name, _, allowed_port = allowed.partition(":")
            if allowed_port and str(port) != allowed_port:
                continue
            if host == name or (name.startswith("*.") and host.endswith(name[1:])):
                return True
        return False


@dataclass(frozen=True)
class JobSettings:
    """jobs: ``store`` (None: the default SQLite file in the state folder), ``ttl``, ``timeout`` and
    ``visibility`` (seconds), ``max_queued``, ``max_result`` (bytes), ``admin`` (tokens that see every
    job; None: none), ``callbacks`` (None: no callbacks)."""

    store: JobStoreLocation | None = None
    ttl: float = 24 * 3600.0
    max_queued: int = 1000
    max_result: int = 50 * 1000**2
    timeout: float = 3600.0
    visibility: float = 30.0
    admin: Access | None = None
    callbacks: CallbackSettings | None = None


@dataclass(frozen=True)
class Manifest:
    """A valid manifest: every setting typed and resolved, with where each came from (source)."""

    path: Path
    version: int = 1
    server: ServerSettings = ServerSettings()
    auth: AuthSettings = AuthSettings()
    defaults: DefaultSettings = DefaultSettings()
    notebooks: Mapping[str, NotebookSettings] = field(default_factory=lambda: EMPTY)
    kernel_api: KernelApiSettings | None = None
    jobs: JobSettings | None = JobSettings()  # None: asynchronous calls are off (``jobs: false``)
    # Where each setting came from, for located messages in later checks; not part of equality.
    source: SourceMap = field(default_factory=SourceMap, compare=False, repr=False)
