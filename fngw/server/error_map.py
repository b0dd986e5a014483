"""Domain errors to HTTP answers, in one place.

Resources raise what happened in their own terms (a pool's queue is full, a cell raised, a kernel
API client named an unknown kernel); Falcon picks the handler here by the exception's class (the
most specific one wins) and each handler raises the HTTP error that is rendered as the gateway's
one JSON shape. The table below is also the contract documented in docs/notebooks.md and
docs/kernel-api.md.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import falcon

from fngw.contracts import RequestRejected, ResponseBroken, SchemaUnusable, UnsupportedMediaType
from fngw.endpoints.errors import CellFailed, RequestInvalid, RequestTooLarge, ResponseInfoInvalid
from fngw.http.disconnect import ClientGone
from fngw.http.errors import GatewayError
from fngw.jobs import IdempotencyConflict, JobNotFinished, JobNotFound, JobQueueFull, NotCancellable, StoreUnavailable
from fngw.kernel_api.errors import HostedElsewhere, PeerUnavailable, RegistryUnavailable
from fngw.kernel_api.registry import Invalid, LaunchTimeout, NotFound, ResourceLimit, ShuttingDown, StartFailed
from fngw.kernels import (
    ExecutionTimeout,
    KernelLost,
    KernelNoReply,
    KernelSeedError,
    NoIdleKernel,
    OutputLimitExceeded,
    PoolClosed,
    PoolUnavailable,
    QueueFull,
    QueueTimeout,
)

CLIENT_CLOSED = "499 Client Closed Request"  # nginx's code: the client hung up before the answer


def _pool_busy(ex: QueueFull | QueueTimeout) -> GatewayError:
    return GatewayError(503, message=str(ex), retry_after=1, pool=ex.pool)


def _pool_down(ex: PoolUnavailable | PoolClosed) -> GatewayError:
    return GatewayError(503, message=str(ex), retry_after=5, pool=ex.pool)


def _timeout(ex: ExecutionTimeout) -> GatewayError:
    within = f" within {ex.timeout:g}s" if ex.timeout is not None else ""
    return GatewayError(504, message=f"the cell did not finish{within}; its kernel is being interrupted")


def _output_limit(ex: OutputLimitExceeded) -> GatewayError:
    return GatewayError(
        502, message=f"the cell's output passed server.max_response ({ex.limit} bytes); its kernel is being interrupted"
    )


def _kernel_lost(ex: KernelLost) -> GatewayError:
    return GatewayError(502, message=f"the kernel stopped while running the request ({ex}); it is being replaced")


def _no_reply(ex: KernelNoReply) -> GatewayError:
    return GatewayError(502, message=f"{ex}; the kernel serves on, the request's outcome is unknown")


def _cell_failed(ex: CellFailed) -> GatewayError:
    extra: dict[str, Any] = {"ename": ex.ename, "evalue": ex.evalue}
    if ex.traceback is not None:
        extra["traceback"] = ex.traceback
    return GatewayError(500, message=str(ex), **extra)


def _start_failed(ex: StartFailed) -> GatewayError:
    extra: dict[str, Any] = {}
    if isinstance(ex.cause, KernelSeedError):
        extra = {"ename": ex.cause.ename, "evalue": ex.cause.evalue}
    return GatewayError(500, message=str(ex), **extra)


def _plain(status: int | str, message: str | None = None) -> Callable[[Exception], GatewayError]:
    return lambda ex: GatewayError(status, message=message if message is not None else str(ex))


# (exception class, what it becomes); Falcon chooses by the raised exception's MRO.
ERROR_MAP: list[tuple[type[Exception], Callable[[Any], GatewayError]]] = [
    (RequestInvalid, _plain(400)),
    (RequestTooLarge, _plain(413)),
    (RequestRejected, lambda ex: GatewayError(422, message=str(ex), errors=ex.errors)),
    (UnsupportedMediaType, lambda ex: GatewayError(415, message=str(ex), accepted=list(ex.accepted))),
    (ResponseBroken, _plain(500)),
    (SchemaUnusable, _plain(500)),
    (ResponseInfoInvalid, _plain(500)),
    (CellFailed, _cell_failed),
    (QueueFull, _pool_busy),
    (QueueTimeout, _pool_busy),
    (NoIdleKernel, _pool_busy),
    (PoolUnavailable, _pool_down),
    (PoolClosed, _pool_down),
    (ExecutionTimeout, _timeout),
    (OutputLimitExceeded, _output_limit),
    (KernelLost, _kernel_lost),
    (KernelNoReply, _no_reply),
    (ClientGone, _plain(CLIENT_CLOSED, "the client closed the connection before the answer was ready")),
    (NotFound, _plain(404)),
    (Invalid, _plain(400)),
    (ResourceLimit, _plain(403, "Resource Limit")),  # Kernel Gateway's words for max_kernels
    (LaunchTimeout, _plain(504)),
    (ShuttingDown, lambda ex: GatewayError(503, message=str(ex), retry_after=1)),
    (StartFailed, _start_failed),
    (RegistryUnavailable, lambda ex: GatewayError(503, message=str(ex), retry_after=5)),
    (PeerUnavailable, lambda ex: GatewayError(503, message=str(ex), retry_after=5)),
    # Only when this instance cannot reach the others (no address): see docs/kernel-api.md.
    (HostedElsewhere, lambda ex: GatewayError(503, message=f"{ex}, which this instance cannot reach", retry_after=5)),
    (JobQueueFull, lambda ex: GatewayError(503, message=str(ex), retry_after=5)),
    (StoreUnavailable, lambda ex: GatewayError(503, message=f"the job store is unreachable: {ex}", retry_after=5)),
    (IdempotencyConflict, _plain(422)),
    (JobNotFound, _plain(404)),
    (NotCancellable, lambda ex: GatewayError(409, message=str(ex), job_status=ex.status)),
    (JobNotFinished, lambda ex: GatewayError(409, message=str(ex), retry_after=ex.retry_after, job_status=ex.status)),
]


def install_error_map(app: falcon.App) -> None:
    """Add a Falcon error handler for every domain error of ``ERROR_MAP``."""
    for error_class, to_http in ERROR_MAP:
        app.add_error_handler(error_class, _handler(to_http))


def _handler(to_http: Callable[[Any], GatewayError]) -> Callable[..., None]:
    def handle(req: falcon.Request, resp: falcon.Response, ex: Exception, params: dict[str, Any]) -> None:
        raise to_http(ex) from None

    return handle
