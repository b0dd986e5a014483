"""Where asynchronous invocations (issue 15, in progress) are kept: a SQLite file every worker of an
instance shares, so that nothing accepted is lost when a worker stops.

This module is the store alone: submitting (with ``max_queued`` and idempotency keys), claiming
the oldest queued job atomically across processes, finishing, failing, cancelling, recovering the
jobs of a claimer that died, and expiring finished ones. The HTTP surface and the runner that
executes jobs on the endpoints' pools come next (docs/jobs.md will describe them).

SQLite runs in WAL mode with a busy timeout, so several processes write without "database is
locked" errors; each claim is one ``BEGIN IMMEDIATE`` transaction, so no two workers take the same
job. Calls block the calling thread for the length of one small statement.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

STATUSES = ("queued", "running", "succeeded", "failed", "cancelled", "expired")
FINISHED = ("succeeded", "failed", "cancelled", "expired")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    endpoint TEXT NOT NULL,
    status TEXT NOT NULL,
    owner TEXT,
    request TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    idempotency_key TEXT,
    created REAL NOT NULL,
    started REAL,
    finished REAL,
    claimed_by TEXT,
    response TEXT,
    error TEXT
);
CREATE INDEX IF NOT EXISTS jobs_queue ON jobs (status, created);
CREATE UNIQUE INDEX IF NOT EXISTS jobs_idempotency ON jobs (owner, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
"""


class JobError(Exception):
    """What a job operation cannot do."""


class QueueFull(JobError):
    """``max_queued`` jobs are already waiting (a 503 with Retry-After)."""


class IdempotencyConflict(JobError):
    """The idempotency key was used for a different request (a 422)."""


class NotCancellable(JobError):
    """The job has finished (a 409 with its status)."""


@dataclass(frozen=True)
class Job:
    """One invocation: ``request`` as submitted (method, path, query, headers, body), ``response``
    once finished (status, headers, body) and ``error`` when it failed; times are Unix seconds."""

    id: str
    endpoint: str
    status: str
    owner: str | None
    request: dict[str, Any]
    created: float
    started: float | None = None
    finished: float | None = None
    claimed_by: str | None = None
    response: dict[str, Any] | None = None
    error: str | None = None


def request_hash(request: dict[str, Any]) -> str:
    """What makes two submissions "the same request" for an idempotency key."""
    return hashlib.sha256(json.dumps(request, sort_keys=True).encode()).hexdigest()


class SqliteJobStore:
    """The jobs of one instance in the SQLite file ``path`` (created with its folders)."""

    def __init__(self, path: Path, *, clock: Callable[[], float] = time.time):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.clock = clock
        with self._connection() as db:
            db.executescript(_SCHEMA)

    @contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=10.0, isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA busy_timeout=10000")
            db.row_factory = sqlite3.Row
            yield db
        finally:
            db.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._connection() as db:
            db.execute("BEGIN IMMEDIATE")  # the write lock now: no two processes claim one job
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def submit(
        self,
        endpoint: str,
        request: dict[str, Any],
        owner: str | None = None,
        idempotency_key: str | None = None,
        max_queued: int | None = None,
    ) -> tuple[Job, bool]:
        """Queue a job; (the job, True) when new, (the earlier job, False) for a repeated
        idempotency key with the same request. Raises QueueFull, IdempotencyConflict."""
        digest = request_hash(request)
        with self._transaction() as db:
            if idempotency_key is not None:
                row = db.execute(
                    "SELECT * FROM jobs WHERE owner IS ? AND idempotency_key = ?", (owner, idempotency_key)
                ).fetchone()
                if row is not None:
                    if row["request_hash"] != digest:
                        raise IdempotencyConflict("this Idempotency-Key was used for a different request")
                    return _job(row), False
            if max_queued is not None:
                (queued,) = db.execute("SELECT COUNT(*) FROM jobs WHERE status = 'queued'").fetchone()
                if queued >= max_queued:
                    raise QueueFull(f"{queued} jobs are waiting, the most jobs.max_queued allows")
            job_id = secrets.token_urlsafe(18)  # unguessable: with auth off, knowing it is access
            db.execute(
                "INSERT INTO jobs (id, endpoint, status, owner, request, request_hash, idempotency_key, created)"
                " VALUES (?, ?, 'queued', ?, ?, ?, ?, ?)",
                (job_id, endpoint, owner, json.dumps(request), digest, idempotency_key, self.clock()),
            )
            row = db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return _job(row), True

    def get(self, job_id: str) -> Job | None:
        """The job, or None."""
        with self._connection() as db:
            row = db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return _job(row) if row is not None else None

    def jobs(self, owner: str | None = None, status: str | None = None, everyone: bool = False) -> list[Job]:
        """Jobs of ``owner`` (or every job with ``everyone``), optionally of one status, oldest first."""
        query, args = "SELECT * FROM jobs WHERE 1=1", []
        if not everyone:
            query += " AND owner IS ?"
            args.append(owner)
        if status is not None:
            query += " AND status = ?"
            args.append(status)
        with self._connection() as db:
            rows = db.execute(query + " ORDER BY created", args).fetchall()
        return [_job(row) for row in rows]

    def claim(self, claimer: str, endpoints: Callable[[str], bool] = lambda _: True) -> Job | None:
        """The oldest queued job whose endpoint ``endpoints`` accepts (its pool has a free kernel),
        now running for ``claimer``; None when there is none."""
        with self._transaction() as db:
            for row in db.execute("SELECT * FROM jobs WHERE status = 'queued' ORDER BY created").fetchall():
                if endpoints(row["endpoint"]):
                    db.execute(
                        "UPDATE jobs SET status = 'running', started = ?, claimed_by = ? WHERE id = ?",
                        (self.clock(), claimer, row["id"]),
                    )
                    return self.get_in(db, row["id"])
        return None

    @staticmethod
    def get_in(db: sqlite3.Connection, job_id: str) -> Job:
        """The job, read inside a transaction."""
        return _job(db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone())

    def finish(self, job_id: str, response: dict[str, Any]) -> None:
        """A running job succeeded with ``response`` (status, headers, body); a job cancelled
        meanwhile stays cancelled."""
        with self._transaction() as db:
            db.execute(
                "UPDATE jobs SET status = 'succeeded', finished = ?, response = ? WHERE id = ? AND status = 'running'",
                (self.clock(), json.dumps(response), job_id),
            )

    def fail(self, job_id: str, reason: str) -> None:
        """A queued or running job failed, for ``reason`` (said to its caller)."""
        with self._transaction() as db:
            db.execute(
                "UPDATE jobs SET status = 'failed', finished = ?, error = ?"
                " WHERE id = ? AND status IN ('queued', 'running')",
                (self.clock(), reason, job_id),
            )

    def cancel(self, job_id: str) -> Job:
        """Cancel a queued or running job (its runner sees the status and interrupts the cell).
        Raises NotCancellable once it has finished, KeyError when there is no such job."""
        with self._transaction() as db:
            row = db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None:
                raise KeyError(job_id)
            if row["status"] in FINISHED:
                raise NotCancellable(f"the job has finished: {row['status']}")
            db.execute("UPDATE jobs SET status = 'cancelled', finished = ? WHERE id = ?", (self.clock(), job_id))
            return self.get_in(db, job_id)

    def recover(self, alive: Callable[[str], bool]) -> list[str]:
        """Jobs running for a claimer that is gone (a worker killed while running them) fail with
        a reason that says so; returns their ids. Queued jobs are untouched: they run later."""
        with self._transaction() as db:
            rows = db.execute("SELECT id, claimed_by FROM jobs WHERE status = 'running'").fetchall()
            lost = [row["id"] for row in rows if not alive(row["claimed_by"] or "")]
            for job_id in lost:
                db.execute(
                    "UPDATE jobs SET status = 'failed', finished = ?, error = ? WHERE id = ?",
                    (self.clock(), "the worker running this job stopped before it finished", job_id),
                )
        return lost

    def expire(self, ttl: float) -> int:
        """Forget jobs finished more than ``ttl`` seconds ago; how many."""
        with self._transaction() as db:
            cursor = db.execute("DELETE FROM jobs WHERE finished IS NOT NULL AND finished < ?", (self.clock() - ttl,))
            return cursor.rowcount

    def counts(self) -> dict[str, int]:
        """Jobs by status, and the age in seconds of the oldest queued one (``oldest_queued_age``)."""
        with self._connection() as db:
            found = dict(db.execute("SELECT status, COUNT(*) FROM jobs GROUP BY status").fetchall())
            (oldest,) = db.execute("SELECT MIN(created) FROM jobs WHERE status = 'queued'").fetchone()
        counts = {status: int(found.get(status, 0)) for status in STATUSES}
        counts["oldest_queued_age"] = int(self.clock() - oldest) if oldest is not None else 0
        return counts


def _job(row: sqlite3.Row) -> Job:
    return Job(
        id=row["id"],
        endpoint=row["endpoint"],
        status=row["status"],
        owner=row["owner"],
        request=json.loads(row["request"]),
        created=row["created"],
        started=row["started"],
        finished=row["finished"],
        claimed_by=row["claimed_by"],
        response=json.loads(row["response"]) if row["response"] else None,
        error=row["error"],
    )
