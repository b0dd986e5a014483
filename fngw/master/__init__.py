"""What the gunicorn master runs: the instance folder, the metrics folder, reaping a dead worker's
kernels. Standard library only: the master must not import jupyter_client (its Popen breaks once a
forked worker is patched by gevent) nor prometheus_client before the metrics folder is named."""
