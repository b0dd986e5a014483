"""Production defaults for `gunicorn fngw.wsgi`. Command-line options override these.

The repository's ``gunicorn.conf.py`` imports this module; a deployment that has only the installed
package (a Cloud Foundry app, a container) names it directly:
``gunicorn -c python:fngw.server.gunicorn_conf fngw.wsgi``.
"""

import os

from fngw.server import gunicorn_hooks

# Cloud Foundry, Heroku-style platforms and most Kubernetes charts pass the port in $PORT.
bind = [f"0.0.0.0:{os.environ['PORT']}"] if os.environ.get("PORT") else ["127.0.0.1:8888"]

# Kernels are driven from greenlets through the gevent hub: the worker must be gevent-patched. Patching happens in
# the worker after fork, so the app is not preloaded (zmq contexts must not cross fork either).
# fngw's worker is gunicorn's gevent worker that also hands repeated request headers to notebooks.
worker_class = "fngw.server.worker.GeventWorker"
preload_app = False
workers = int(os.environ.get("WEB_CONCURRENCY", "1"))  # each worker runs its own kernel pools
# Requests queued for a kernel and open websockets are all connections: far above the default 1000.
worker_connections = int(os.environ.get("FNGW_WORKER_CONNECTIONS", "10000"))

# Heartbeat only, for async workers: requests have their own deadlines in the manifest.
timeout = 30
# Cloud Foundry sends SIGKILL 10 s after SIGTERM: finish in-flight requests and stop kernels before.
graceful_timeout = 8
# Above the idle keep-alive of common routers and load balancers, so the gateway never closes a
# connection the proxy is about to reuse.
keepalive = 75

# gunicorn's control socket lives in $HOME by default: two gateways of one user would share it.
# Signals (TERM, HUP, TTIN, TTOU) do what fngw needs.
control_socket_disable = True

# Heartbeat files in memory: a container's overlay disk can block the os.fchmod gunicorn does.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None

# fngw logs a JSON line per request itself (server.log_format); gunicorn's access log stays off.
accesslog = os.environ.get("FNGW_ACCESS_LOG") or None
errorlog = "-"

on_starting = gunicorn_hooks.on_starting
on_reload = gunicorn_hooks.on_reload
worker_exit = gunicorn_hooks.worker_exit
child_exit = gunicorn_hooks.child_exit
on_exit = gunicorn_hooks.on_exit
