"""Reading token secrets from where the manifest says they live."""

from __future__ import annotations

import os
from collections.abc import Mapping

from fngw.manifest import TokenSource


class TokenUnavailable(Exception):
    """A token's secret cannot be read (unset variable, missing or empty file)."""


def read_token(source: TokenSource, environ: Mapping[str, str] = os.environ) -> str:
    """The secret of ``source``, stripped of surrounding whitespace; never empty."""
    if source.env is not None:
        value = environ.get(source.env, "")
        if not value.strip():
            raise TokenUnavailable(f"environment variable {source.env} is not set or empty")
        return value.strip()
    assert source.file is not None
    try:
        value = source.file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TokenUnavailable(f"file {source.file} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise TokenUnavailable(f"file {source.file} cannot be read: {exc}") from None
    if not value.strip():
        raise TokenUnavailable(f"file {source.file} is empty")
    return value.strip()
