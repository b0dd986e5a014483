"""``{base}/_fngw/jobs``: a caller's jobs, one job's status, its result, and cancelling it.

A job is visible to the token that created it and to ``jobs.admin`` tokens; a job created without
a token (auth off, or a public endpoint called without one) to anyone who knows its id, which is
unguessable. A job the caller may not see is answered exactly as one that does not exist (404).
Listing needs a token: without one nobody could be told apart, and a list would hand out the ids.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import falcon

from fngw.auth.middleware import unauthorized
from fngw.http.errors import GatewayError
from fngw.manifest import Access

from .model import STATUSES, Job, JobStore
from .submission import representation


class JobNotFound(Exception):
    """No job with this id that the caller may see (a 404)."""


class JobNotFinished(Exception):
    """The job has no result (yet, or ever): a 409 naming its status."""

    def __init__(self, message: str, status: str, retry_after: int | None = None):
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


class JobAccess:
    """Who sees which job: ``caller`` names the token of a request (401 for a wrong one), ``admin``
    names the tokens that see every job."""

    def __init__(
        self,
        store: JobStore,
        caller: Callable[[falcon.Request], str | None],
        admin: Access | None,
        tokens_configured: bool = True,
    ):
        self.store = store
        self.caller = caller
        self.admin = admin
        self.tokens_configured = tokens_configured

    def is_admin(self, name: str | None) -> bool:
        """Whether token ``name`` sees every job."""
        return name is not None and self.admin is not None and name in self.admin.tokens

    def visible(self, req: falcon.Request, job_id: str) -> Job:
        """The job, when the caller may see it; raises JobNotFound."""
        name = self.caller(req)
        job = self.store.get(job_id)
        if job is None or not (job.owner is None or job.owner == name or self.is_admin(name)):
            # The same answer whether it does not exist or is another caller's; the hint is for
            # a caller who forgot the token the job was created with.
            raise JobNotFound(f"no job {job_id} visible to this caller (a job is seen with the token that created it)")
        return job


def _retry_after(job: Job) -> int:
    """Seconds a poller should wait: soon for a fresh job, less often for an old one."""
    return 1 if time.time() - job.created < 10 else 5


class JobListResource:
    """``GET {base}/_fngw/jobs?status=...``: the caller's jobs (every job for an admin token)."""

    def __init__(self, access: JobAccess, base_url: str):
        self.access = access
        self.base_url = base_url

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        """``{"jobs": [job, ...]}``, oldest first; 400 for an unknown status, 401 without a token."""
        wanted = req.get_param_as_list("status") or []  # ?status=queued&status=running, or queued,running
        unknown = [status for status in wanted if status not in STATUSES]
        if unknown:
            raise GatewayError(400, message=f"status must be one of {', '.join(STATUSES)} (not {unknown[0]!r})")
        name = self.access.caller(req)
        if name is None and not self.access.tokens_configured:
            raise GatewayError(
                403,
                message="this gateway has no tokens, so no caller can be told apart: a job is reached by its id"
                " (operators: fngw jobs list)",
            )
        if name is None:
            raise unauthorized("listing jobs needs a token; without one, a job is reached by its id")
        everyone = self.access.is_admin(name)
        status = wanted[0] if len(wanted) == 1 else None
        jobs = self.access.store.jobs(owner=name, status=status, everyone=everyone)
        resp.media = {
            "jobs": [representation(job, self.base_url) for job in jobs if not wanted or job.status in wanted]
        }

    on_head = on_get


class JobResource:
    """``GET`` and ``DELETE {base}/_fngw/jobs/{job_id}``."""

    def __init__(self, access: JobAccess, base_url: str, observe: Callable[[str, str], None] | None = None):
        self.access = access
        self.base_url = base_url
        self.observe = observe

    def on_get(self, req: falcon.Request, resp: falcon.Response, job_id: str) -> None:
        """The job (``representation``), with Retry-After while it has not finished."""
        job = self.access.visible(req, job_id)
        if job.status in ("queued", "running"):
            resp.set_header("Retry-After", str(_retry_after(job)))
        resp.media = representation(job, self.base_url)

    on_head = on_get

    def on_delete(self, req: falcon.Request, resp: falcon.Response, job_id: str) -> None:
        """Cancel: a queued job never runs, a running one's kernel is interrupted (by its runner,
        within a heartbeat). The cancelled job; 409 once it has finished."""
        job = self.access.visible(req, job_id)
        try:
            cancelled = self.access.store.cancel(job.id)
        except KeyError:
            raise JobNotFound(f"no job {job_id}") from None
        if self.observe is not None:
            self.observe(job.endpoint, "cancelled")
        resp.media = representation(cancelled, self.base_url)


class JobResultResource:
    """``GET {base}/_fngw/jobs/{job_id}/result``: the response the synchronous call would have given."""

    def __init__(self, access: JobAccess):
        self.access = access

    def on_get(self, req: falcon.Request, resp: falcon.Response, job_id: str) -> None:
        """Status, headers and body as the run answered them; 409 while there is none."""
        job = self.access.visible(req, job_id)
        result = self.access.store.result(job.id) if job.has_result else None
        if result is None:
            pending = job.status in ("queued", "running")
            why = f": {job.error}" if job.error else ""
            message = f"the job is {job.status} and has no result{why}"
            raise JobNotFinished(message, job.status, _retry_after(job) if pending else None)
        resp.status = falcon.code_to_http_status(result.status)
        for name, value in result.headers:
            if name.lower() == "content-type":
                resp.content_type = value
            else:
                resp.append_header(name, value)
        resp.data = result.body

    on_head = on_get
