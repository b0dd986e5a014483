"""Notebook parsing: annotated cells become endpoints, the rest seed the kernels.

Parsing reads files only; it starts no process and opens no socket.
"""

from .parser import (
    DEFAULT_COMMENT_PREFIXES,
    VERBS,
    Endpoint,
    NotebookError,
    ParsedNotebook,
    ParseProblem,
    parse_notebook,
    read_notebook,
)

__all__ = [
    "DEFAULT_COMMENT_PREFIXES",
    "VERBS",
    "Endpoint",
    "NotebookError",
    "ParseProblem",
    "ParsedNotebook",
    "parse_notebook",
    "read_notebook",
]
