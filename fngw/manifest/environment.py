"""``${NAME}`` in the manifest's service URLs (``kernel_api.registry``, ``jobs.store``): the
password comes from the platform's secrets (a Cloud Foundry service binding, a Kubernetes Secret
as an environment variable) rather than from the manifest file.

Values are substituted percent-encoded, since they land inside a URL: a password holding ``/``,
``#``, ``?`` or ``@`` reaches Redis as it is (redis-py decodes the user name and password), and
never spills into the host or path of the URL. A name that is not set is an error when serving
(``fngw validate --strict`` and at start), a warning otherwise: CI rarely holds the secrets.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from urllib.parse import quote

VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class UnsetVariable(ValueError):
    """``text`` names environment variables that are not set (``names``, in order)."""

    def __init__(self, names: list[str]):
        super().__init__(", ".join(f"${{{n}}}" for n in names) + (" is not set" if len(names) == 1 else " are not set"))
        self.names = names


def unset_variables(text: str, environ: Mapping[str, str]) -> list[str]:
    """The names ``text`` refers to as ``${NAME}`` that ``environ`` lacks, once each, in order."""
    names = [m.group(1) for m in VARIABLE.finditer(text)]
    return [n for i, n in enumerate(names) if n not in environ and n not in names[:i]]


def expand_url(url: str, environ: Mapping[str, str]) -> str:
    """``url`` with every ``${NAME}`` replaced by that variable's value, percent-encoded.
    ``UnsetVariable`` when one is not set (its message names the variables, never values)."""
    missing = unset_variables(url, environ)
    if missing:
        raise UnsetVariable(missing)
    return VARIABLE.sub(lambda m: quote(environ[m.group(1)], safe=""), url)
