"""Authentication: named bearer tokens whose secrets come from the environment or files."""

from .middleware import Guarded
from .tokens import TokenUnavailable, read_token

__all__ = ["Guarded", "TokenUnavailable", "read_token"]
