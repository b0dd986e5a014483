"""Accepting an asynchronous call: ``Prefer: respond-async`` (RFC 7240) or an ``async`` endpoint
answers 202 Accepted with the job's URL, once the request has passed every check a synchronous
call passes (auth, body limits, schemas), which the endpoint handler does before it gets here.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import falcon

from fngw.http.errors import GatewayError
from fngw.manifest import AsyncSettings, JobSettings, join_url
from fngw.telemetry.tracing import trace_headers

from .model import Job, JobOptions, JobStore
from .replay import stored_request

JOBS_PATH = "_fngw/jobs"
_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")  # visible ASCII: an Idempotency-Key is logged and stored


def prefers_async(req: falcon.Request) -> bool:
    """Whether ``Prefer`` holds ``respond-async`` (tokens are case-insensitive; several headers,
    several preferences and parameters after ``;`` are allowed)."""
    header = req.get_header("Prefer")
    if not header:
        return False
    for preference in header.split(","):
        token = preference.split(";", 1)[0].split("=", 1)[0].strip().lower()
        if token == "respond-async":
            return True
    return False


def rfc3339(seconds: float | None) -> str | None:
    """Unix seconds as ``2026-12-01T04:37:35.120Z``; None stays None."""
    if seconds is None:
        return None
    moment = datetime.fromtimestamp(seconds, timezone.utc)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def job_href(base_url: str, job_id: str) -> str:
    """The job's URL path: ``{base}/_fngw/jobs/{id}``."""
    return join_url(base_url, JOBS_PATH, job_id)


def representation(job: Job, base_url: str) -> dict[str, Any]:
    """The job as its resource shows it: ``id``, ``status``, ``endpoint``, ``href``, ``created``,
    ``started``, ``finished`` (RFC 3339, null until then), ``result`` (its URL, once a run
    answered) and ``error`` (why it failed)."""
    href = job_href(base_url, job.id)
    body: dict[str, Any] = {
        "id": job.id,
        "status": job.status,
        "endpoint": job.endpoint,
        "href": href,
        "created": rfc3339(job.created),
        "started": rfc3339(job.started),
        "finished": rfc3339(job.finished),
    }
    if job.has_result:
        body["result"] = f"{href}/result"
    if job.error:
        body["error"] = job.error
    return body


class JobSubmitter:
    """Turns accepted calls into jobs in ``store``. ``caller`` names the token a request presents
    (its job's owner); ``wake`` tells this worker's runner; ``observe`` counts (endpoint, status)."""

    def __init__(
        self,
        store: JobStore,
        settings: JobSettings,
        base_url: str,
        caller: Callable[[falcon.Request], str | None],
        wake: Callable[[], None] = lambda: None,
        observe: Callable[[str, str], None] | None = None,
    ):
        self.store = store
        self.settings = settings
        self.base_url = base_url
        self.caller = caller
        self.wake = wake
        self.observe = observe

    def wanted(self, req: falcon.Request, settings: AsyncSettings) -> bool:
        """Whether this call becomes a job (never a HEAD: it has no result to keep)."""
        return req.method != "HEAD" and (settings.enabled or prefers_async(req))

    def submit(
        self, req: falcon.Request, resp: falcon.Response, endpoint: str, settings: AsyncSettings, body: bytes
    ) -> None:
        """Queue the call and answer 202 with ``Location``, ``Retry-After`` and
        ``Preference-Applied``. Raises 422 (a callback URL that is not allowed, a malformed or
        reused Idempotency-Key), 503 (the queue is full, the store is unreachable)."""
        key = req.get_header("Idempotency-Key")
        if key is not None and not _KEY.match(key):
            raise GatewayError(422, message="Idempotency-Key must be 1 to 255 visible ASCII characters")
        options = JobOptions(
            timeout=settings.timeout if settings.timeout is not None else self.settings.timeout,
            idempotent=settings.idempotent,
            callback=self._callback(req, settings),
        )
        job, new = self.store.submit(
            endpoint,
            stored_request(req, body, trace_headers(getattr(req.context, "trace", None))),
            options,
            self.caller(req),
            key,
            self.settings.max_queued,
        )
        if new:
            if self.observe is not None:
                self.observe(endpoint, "queued")
            self.wake()
        resp.status = falcon.HTTP_202
        resp.location = job_href(self.base_url, job.id)
        resp.set_header("Retry-After", "1")
        resp.set_header("Preference-Applied", "respond-async")
        resp.media = representation(job, self.base_url)

    def _callback(self, req: falcon.Request, settings: AsyncSettings) -> str | None:
        url = req.get_header("X-Callback-Url") or settings.callback
        if url is None:
            return None
        callbacks = self.settings.callbacks
        if callbacks is None:
            raise GatewayError(422, message="callbacks are off: the manifest has no jobs.callbacks")
        if not callbacks.allows(url):
            raise GatewayError(
                422,
                message="X-Callback-Url must be an http(s) URL without credentials or spaces,"
                " to a host that jobs.callbacks.allow_hosts lists",
            )
        return url
