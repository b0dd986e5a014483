"""gunicorn's configuration when started from this folder: fngw's production defaults.

They live in the package (``fngw/server/gunicorn_conf.py``) so that deployments of the installed
package use the same ones (``gunicorn -c python:fngw.server.gunicorn_conf fngw.wsgi``). Override any
of them on the command line, or below.
"""

from fngw.server.gunicorn_conf import *  # noqa: F403
