"""What the gateway tells its operators: Prometheus metrics, log lines and request ids.

The kernel runtime knows nothing of this package: pool figures are sampled from ``PoolStats``.
Exports load on first use: the gunicorn master imports ``fngw.telemetry.multiprocess`` and must not
import prometheus_client before it has named the metrics folder (prometheus_client picks its
storage when first imported, and workers inherit the master's modules).
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "configure_logging": ("logs", "configure"),
    "GatewayMetrics": ("metrics", "GatewayMetrics"),
    "REQUEST_ID_HEADER": ("requests", "REQUEST_ID_HEADER"),
    "RequestTelemetry": ("requests", "RequestTelemetry"),
    "request_id_from": ("requests", "request_id_from"),
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'fngw.telemetry' has no attribute {name!r}")
    module, attr = _EXPORTS[name]
    return getattr(import_module(f"{__name__}.{module}"), attr)
