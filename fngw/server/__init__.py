"""Server wiring: the Falcon application and, separately, the gunicorn hooks."""

from .app import create_app

__all__ = ["create_app"]
