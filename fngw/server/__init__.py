"""Server wiring: the composition root (``gateway.build_gateway``), the Falcon application
(``app.create_app``), the domain errors' HTTP answers, fngw's gunicorn worker and its hooks.

Nothing is imported here: the gunicorn master imports ``fngw.server.gunicorn_conf`` and
``gunicorn_hooks``, which must not pull in the kernel runtime or Falcon.
"""
