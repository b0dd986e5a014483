"""The manifest: strict YAML, its JSON Schema, and immutable typed settings.

Loading starts no process and opens no socket.
"""

from .loader import LoadResult, join_url, load_manifest, manifest_schema
from .model import (
    PUBLIC,
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
)
from .problems import Problem, render, render_generated, summary_line
from .report import ProblemReport
from .units import parse_duration, parse_size
from .yamlsource import JsonPath, Location, SourceMap, json_path

__all__ = [
    "PUBLIC",
    "Access",
    "AsyncSettings",
    "AuthSettings",
    "CallbackSettings",
    "CorsSettings",
    "CullSettings",
    "DefaultSettings",
    "EndpointSettings",
    "JobSettings",
    "JobStoreLocation",
    "JsonPath",
    "KernelApiSettings",
    "LoadResult",
    "Location",
    "Manifest",
    "NotebookSettings",
    "PoolSettings",
    "Problem",
    "ProblemReport",
    "ServerSettings",
    "SourceMap",
    "StreamSettings",
    "TokenSource",
    "join_url",
    "json_path",
    "load_manifest",
    "manifest_schema",
    "parse_duration",
    "parse_size",
    "render",
    "render_generated",
    "summary_line",
]
