"""Authentication: named bearer tokens whose secrets come from the environment or files."""

from .tokens import TokenUnavailable, read_token

__all__ = ["TokenUnavailable", "read_token"]
