"""What the gateway tells its operators: Prometheus metrics, log lines and request ids.

The kernel runtime knows nothing of this package: pool figures are sampled from ``PoolStats``.
The gunicorn master never imports it (its part, naming the metrics folder before prometheus_client
is imported, is ``fngw.master.metrics_dir``).
"""

from __future__ import annotations

from .logs import configure as configure_logging
from .metrics import GatewayMetrics
from .requests import REQUEST_ID_HEADER, RequestTelemetry, request_id_from

__all__ = ["REQUEST_ID_HEADER", "GatewayMetrics", "RequestTelemetry", "configure_logging", "request_id_from"]
