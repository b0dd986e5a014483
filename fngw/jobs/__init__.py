"""Asynchronous invocations (issue 15, in progress): the durable store every worker shares."""

from .store import FINISHED, STATUSES, IdempotencyConflict, Job, JobError, NotCancellable, QueueFull, SqliteJobStore

__all__ = [
    "FINISHED",
    "STATUSES",
    "IdempotencyConflict",
    "Job",
    "JobError",
    "NotCancellable",
    "QueueFull",
    "SqliteJobStore",
]
