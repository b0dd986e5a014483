"""What a job is, what every store offers, and the errors of both.

A job is one asynchronous call of an endpoint: the request as it was accepted (``StoredRequest``),
how it runs (``JobOptions``), and once it ran, the response the synchronous call would have given
(``StoredResponse``). Stores (``SqliteJobStore``, ``RedisJobStore``) keep jobs where every worker
and instance that serves the manifest reads them; the rest of fngw talks to ``JobStore``.
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
import socket
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Protocol

from fngw.manifest.model import JOB_STATUSES

JobStatus = Literal["queued", "running", "succeeded", "failed", "cancelled", "expired"]
STATUSES: tuple[JobStatus, ...] = ("queued", "running", "succeeded", "failed", "cancelled", "expired")
assert STATUSES == JOB_STATUSES
FINISHED: tuple[JobStatus, ...] = ("succeeded", "failed", "cancelled", "expired")

LOST_REASON = "the worker running this job stopped before it finished"


class JobError(Exception):
    """What a job operation cannot do."""


class JobQueueFull(JobError):
    """``jobs.max_queued`` jobs are already waiting (a 503 with Retry-After)."""


class IdempotencyConflict(JobError):
    """The idempotency key was used for a different request (a 422)."""


class NotCancellable(JobError):
    """The job has finished (a 409 with its status)."""

    def __init__(self, message: str, status: str):
        super().__init__(message)
        self.status = status


class StoreUnavailable(JobError):
    """The store cannot be reached (Redis down): a 503; synchronous calls are unaffected."""


@dataclass(frozen=True)
class StoredRequest:
    """An accepted request as the runner replays it: ``method``, ``target`` (the raw path and
    query as the client wrote them, credentials removed), ``headers`` (name, value) in order, and
    ``body`` bytes."""

    method: str
    target: str
    headers: tuple[tuple[str, str], ...]
    body: bytes = b""

    def head_json(self) -> dict[str, Any]:
        """Method, target and headers as JSON; stores keep the body apart, as bytes (in JSON it
        would grow up to six times), and read it only to run the job."""
        return {"method": self.method, "target": self.target, "headers": [list(pair) for pair in self.headers]}

    @classmethod
    def from_parts(cls, head: dict[str, Any], body: bytes = b"") -> StoredRequest:
        """The request ``head_json`` and its body describe."""
        headers = tuple((str(name), str(value)) for name, value in head["headers"])
        return cls(head["method"], head["target"], headers, body)

    def fingerprint(self) -> str:
        """What makes two submissions "the same request" for an ``Idempotency-Key``: method,
        target, Content-Type, Accept (the result's form depends on it) and body; not headers that
        differ between retries of one call, such as X-Request-Id, Date or traceparent."""
        content_type = next((v for n, v in self.headers if n.lower() == "content-type"), "")
        accept = ",".join(v for n, v in self.headers if n.lower() == "accept")
        digest = hashlib.sha256()
        for part in (self.method, self.target, content_type, accept):
            digest.update(part.encode("utf-8", "surrogateescape") + b"\0")
        digest.update(self.body)
        return digest.hexdigest()


@dataclass(frozen=True)
class StoredResponse:
    """What a run answered: ``status`` (an int), ``headers`` (name, value) and ``body`` bytes."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes

    def head_json(self) -> dict[str, Any]:
        """Status and headers as JSON (the body is kept beside it, as bytes)."""
        return {"status": self.status, "headers": [list(pair) for pair in self.headers]}

    @classmethod
    def from_parts(cls, head: dict[str, Any], body: bytes) -> StoredResponse:
        """The response ``head_json`` and its body describe."""
        return cls(int(head["status"]), tuple((str(n), str(v)) for n, v in head["headers"]), body)


@dataclass(frozen=True)
class JobOptions:
    """How a job runs: ``timeout`` (seconds), ``idempotent`` (run again once when its runner is
    lost), ``callback`` (a URL the finished job is POSTed to, or None)."""

    timeout: float
    idempotent: bool = False
    callback: str | None = None

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> JobOptions:
        """The options ``to_json`` wrote."""
        return cls(float(data["timeout"]), bool(data.get("idempotent")), data.get("callback"))


@dataclass(frozen=True)
class Job:
    """One invocation of ``endpoint`` ("POST /score"); times are Unix seconds. ``response_head``
    is set once a run answered (its body is read separately: ``JobStore.result``); the request's
    body is read only by ``claim`` (elsewhere ``request.body`` is empty)."""

    id: str
    endpoint: str
    status: JobStatus
    owner: str | None
    request: StoredRequest
    options: JobOptions
    created: float
    started: float | None = None
    finished: float | None = None
    claimed_by: str | None = None
    attempts: int = 0
    response_head: dict[str, Any] | None = field(default=None, repr=False)
    error: str | None = None

    @property
    def has_result(self) -> bool:
        """Whether a run answered (the result resource serves it)."""
        return self.response_head is not None and self.status in ("succeeded", "failed")


@dataclass(frozen=True)
class JobCounts:
    """Jobs by status, and the age in seconds of the oldest queued job (0 without one)."""

    by_status: dict[str, int]
    oldest_queued_age: float


def new_job_id() -> str:
    """120 random bits as 24 lower-case base32 characters: unguessable (with auth off, knowing the
    id is the access), safe in URLs, and never mistaken for a command-line option."""
    return base64.b32encode(secrets.token_bytes(15)).decode("ascii").lower()


def claimer_id() -> str:
    """This process as a claimer: ``host:pid:nonce`` (the nonce tells a reused pid apart)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


def claimer_gone(claimer: str, pid_alive: Callable[[int], bool]) -> bool:
    """Whether ``claimer`` is known to be gone: a process of this host that no longer runs. Other
    hosts' claimers are judged by their heartbeats alone."""
    host, _, rest = claimer.partition(":")
    pid = rest.partition(":")[0]
    return host == socket.gethostname() and pid.isdigit() and not pid_alive(int(pid))


class JobStore(Protocol):
    """What the runner, the job resources and ``fngw jobs`` need of a store. Every method may
    raise ``StoreUnavailable``."""

    def submit(
        self,
        endpoint: str,
        request: StoredRequest,
        options: JobOptions,
        owner: str | None = None,
        idempotency_key: str | None = None,
        max_queued: int | None = None,
    ) -> tuple[Job, bool]:
        """Queue a job: (the job, True); (the earlier job, False) for a repeated idempotency key
        with the same request. Raises JobQueueFull, IdempotencyConflict."""
        ...

    def get(self, job_id: str) -> Job | None:
        """The job, or None."""
        ...

    def result(self, job_id: str) -> StoredResponse | None:
        """The response of a job that has one."""
        ...

    def jobs(self, owner: str | None = None, status: str | None = None, everyone: bool = False) -> list[Job]:
        """The jobs of ``owner`` (every job with ``everyone``), of one status if given, oldest first."""
        ...

    def queued(self) -> bool:
        """Whether any job waits (cheap: the runner asks before claiming)."""
        ...

    def claim(self, claimer: str, endpoints: Callable[[str], bool]) -> Job | None:
        """The oldest queued job whose endpoint ``endpoints`` accepts, now running for ``claimer``."""
        ...

    def heartbeat(self, claimer: str, running: list[str]) -> list[str]:
        """``claimer`` is alive and runs ``running``; returns those that were cancelled meanwhile."""
        ...

    def finish(self, job_id: str, response: StoredResponse, status: JobStatus, error: str | None = None) -> None:
        """A run answered (``status`` succeeded or failed); a cancelled job stays cancelled."""
        ...

    def fail(self, job_id: str, reason: str) -> None:
        """A queued or running job failed without a response, for ``reason``."""
        ...

    def requeue(self, job_id: str, ran: bool = True) -> None:
        """A running job goes back to the queue: its runner stopped before it finished, or (not
        ``ran``) it never started its cell, which then does not count as an attempt."""
        ...

    def cancel(self, job_id: str) -> Job:
        """Cancel a queued or running job. Raises NotCancellable, KeyError."""
        ...

    def recover(self, visibility: float, pid_alive: Callable[[int], bool]) -> list[str]:
        """Running jobs whose claimer is gone (its process ended, or silent for ``visibility``
        seconds) run again when idempotent and not yet retried, else fail; returns their ids."""
        ...

    def expire(self, ttl: float) -> int:
        """Jobs finished more than ``ttl`` seconds ago become ``expired`` (their request and result
        are dropped); expired ones older than another ``ttl`` are forgotten. Queued jobs never
        expire. How many."""
        ...

    def counts(self) -> JobCounts:
        """Jobs by status and the oldest queued job's age (reads every job: for operators)."""
        ...

    def waiting(self) -> tuple[int, float]:
        """Queued jobs and the oldest one's age in seconds (cheap: sampled every second)."""
        ...

    def describe(self) -> str:
        """Where the jobs are, without credentials."""
        ...
