"""Asynchronous invocations (docs/jobs.md): 202 and a job URL for any endpoint, jobs kept in a
durable store that every worker (SQLite) or every instance (Redis) shares, run on the endpoints'
own pools by each worker's runner."""

from .model import (
    FINISHED,
    STATUSES,
    IdempotencyConflict,
    Job,
    JobCounts,
    JobError,
    JobOptions,
    JobQueueFull,
    JobStatus,
    JobStore,
    NotCancellable,
    StoredRequest,
    StoredResponse,
    StoreUnavailable,
)
from .resources import JobNotFinished, JobNotFound
from .runner import JobRun, JobRunner
from .sqlite_store import SqliteJobStore
from .submission import JobSubmitter

__all__ = [
    "FINISHED",
    "STATUSES",
    "IdempotencyConflict",
    "Job",
    "JobCounts",
    "JobError",
    "JobNotFinished",
    "JobNotFound",
    "JobOptions",
    "JobQueueFull",
    "JobRun",
    "JobRunner",
    "JobStatus",
    "JobStore",
    "JobSubmitter",
    "NotCancellable",
    "SqliteJobStore",
    "StoreUnavailable",
    "StoredRequest",
    "StoredResponse",
]
