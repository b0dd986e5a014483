"""The jobs of one instance in a SQLite file that every worker shares.

SQLite runs in WAL mode with a busy timeout, so several processes write without "database is
locked" errors; each claim is one ``BEGIN IMMEDIATE`` transaction, so no two workers take the same
job. Calls block their thread for one small statement: gevent code calls them through
``fngw.jobs.offhub`` so that a lock held by another process never stalls a worker's hub.

The file is created with the first job, so a gateway whose endpoints are never called
asynchronously leaves nothing on disk.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .model import (
    FINISHED,
    LOST_REASON,
    STATUSES,
    IdempotencyConflict,
    Job,
    JobCounts,
    JobOptions,
    JobQueueFull,
    JobStatus,
    NotCancellable,
    StoredRequest,
    StoredResponse,
    claimer_gone,
    new_job_id,
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    endpoint TEXT NOT NULL,
    status TEXT NOT NULL,
    owner TEXT,
    request TEXT,
    request_body BLOB,
    fingerprint TEXT NOT NULL,
    idempotency_key TEXT,
    options TEXT NOT NULL,
    created REAL NOT NULL,
    started REAL,
    finished REAL,
    expired REAL,
    claimed_by TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    response TEXT,
    body BLOB,
    error TEXT
);
CREATE INDEX IF NOT EXISTS jobs_queue ON jobs (status, endpoint, created);
CREATE INDEX IF NOT EXISTS jobs_owner ON jobs (owner, created);
CREATE UNIQUE INDEX IF NOT EXISTS jobs_idempotency ON jobs (owner, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE TABLE IF NOT EXISTS claimers (claimer TEXT PRIMARY KEY, seen REAL NOT NULL);
"""

_COLUMNS = (
    "id, endpoint, status, owner, request, options, created, started, finished, claimed_by, attempts, response, error"
)


class SqliteJobStore:
    """The jobs in the SQLite file ``path`` (created, with its folders, by the first submission)."""

    def __init__(self, path: Path, *, clock: Callable[[], float] = time.time):
        self.path = path
        self.clock = clock
        self._idle: deque[sqlite3.Connection] = deque()  # append/pop are atomic: safe from any thread
        self._created = path.exists()

    def describe(self) -> str:
        """``sqlite:<path>``."""
        return f"sqlite:{self.path}"

    # --- connections ---------------------------------------------------------------------------

    @contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        # Connections are reused (opening one costs more than a statement); each is used by one
        # thread at a time, whichever thread that is.
        try:
            db = self._idle.pop()
        except IndexError:
            db = sqlite3.connect(self.path, timeout=10.0, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA busy_timeout=10000")
            db.row_factory = sqlite3.Row
        try:
            yield db
        except sqlite3.Error:
            db.close()
            raise
        self._idle.append(db)

    def _exists(self) -> bool:
        if not self._created:
            self._created = self.path.exists()
        return self._created

    def _create(self) -> None:
        if self._created:
            return
        # Requests and results are the callers' data: owner-only, as SQLite's -wal and -shm follow.
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))
        with self._connection() as db:
            db.executescript(_SCHEMA)
        self._created = True

    @contextmanager
    def _transaction(self, durable: bool = False) -> Iterator[sqlite3.Connection]:
        """A write transaction. ``durable``: what a client was promised (an accepted job, a
        cancel) is on disk before the answer, surviving a power loss; other writes (claims,
        outcomes, heartbeats) survive a killed process, which is what WAL's NORMAL mode keeps, at a
        tenth of the cost. A finished job lost with the machine is recovered as lost."""
        self._create()
        with self._connection() as db:
            db.execute("PRAGMA synchronous=FULL" if durable else "PRAGMA synchronous=NORMAL")
            db.execute("BEGIN IMMEDIATE")  # the write lock now: no two processes claim one job
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def _rows(self, query: str, args: tuple[Any, ...] | list[Any] = ()) -> list[sqlite3.Row]:
        if not self._exists():
            return []
        with self._connection() as db:
            return db.execute(query, args).fetchall()

    # --- the store -----------------------------------------------------------------------------

    def submit(
        self,
        endpoint: str,
        request: StoredRequest,
        options: JobOptions,
        owner: str | None = None,
        idempotency_key: str | None = None,
        max_queued: int | None = None,
    ) -> tuple[Job, bool]:
        """Queue a job; see ``JobStore.submit``."""
        fingerprint = request.fingerprint()
        with self._transaction(durable=True) as db:
            if idempotency_key is not None:
                row = db.execute(
                    f"SELECT {_COLUMNS}, fingerprint FROM jobs WHERE owner IS ? AND idempotency_key = ?",
                    (owner, idempotency_key),
                ).fetchone()
                if row is not None:
                    if row["fingerprint"] != fingerprint:
                        raise IdempotencyConflict("this Idempotency-Key was used for a different request")
                    return _job(row), False
            if max_queued is not None:
                (waiting,) = db.execute("SELECT COUNT(*) FROM jobs WHERE status = 'queued'").fetchone()
                if waiting >= max_queued:
                    raise JobQueueFull(f"{waiting} jobs are waiting, the most jobs.max_queued allows")
            job_id = new_job_id()
            db.execute(
                "INSERT INTO jobs (id, endpoint, status, owner, request, request_body, fingerprint,"
                " idempotency_key, options, created) VALUES (?, ?, 'queued', ?, ?, ?, ?, ?, ?, ?)",
                (
                    job_id,
                    endpoint,
                    owner,
                    json.dumps(request.head_json()),
                    request.body,
                    fingerprint,
                    idempotency_key,
                    json.dumps(options.to_json()),
                    self.clock(),
                ),
            )
            job = _job(db.execute(f"SELECT {_COLUMNS} FROM jobs WHERE id = ?", (job_id,)).fetchone())
        return job, True

    def get(self, job_id: str) -> Job | None:
        """The job, or None."""
        rows = self._rows(f"SELECT {_COLUMNS} FROM jobs WHERE id = ?", (job_id,))
        return _job(rows[0]) if rows else None

    def result(self, job_id: str) -> StoredResponse | None:
        """The response of a job that has one."""
        rows = self._rows("SELECT response, body FROM jobs WHERE id = ? AND response IS NOT NULL", (job_id,))
        if not rows:
            return None
        return StoredResponse.from_parts(json.loads(rows[0]["response"]), bytes(rows[0]["body"] or b""))

    def jobs(self, owner: str | None = None, status: str | None = None, everyone: bool = False) -> list[Job]:
        """Jobs of ``owner`` (or every job with ``everyone``), optionally of one status, oldest first."""
        query, args = f"SELECT {_COLUMNS} FROM jobs WHERE 1=1", []
        if not everyone:
            query += " AND owner IS ?"
            args.append(owner)
        if status is not None:
            query += " AND status = ?"
            args.append(status)
        return [_job(row) for row in self._rows(query + " ORDER BY created", args)]

    def queued(self) -> bool:
        """Whether any job waits."""
        return bool(self._rows("SELECT 1 FROM jobs WHERE status = 'queued' LIMIT 1"))

    def claim(self, claimer: str, endpoints: Callable[[str], bool]) -> Job | None:
        """The oldest queued job whose endpoint ``endpoints`` accepts, now running for ``claimer``."""
        if not self.queued():
            return None  # the common case takes no write lock
        with self._transaction() as db:
            # The endpoints with work, oldest first: one row per endpoint (read from the index),
            # not one per queued job, so a claim costs the same with 10 or 10,000 jobs waiting.
            heads = db.execute(
                "SELECT endpoint, MIN(created) AS oldest FROM jobs WHERE status = 'queued'"
                " GROUP BY endpoint ORDER BY oldest"
            ).fetchall()
            for head in heads:
                if not endpoints(head["endpoint"]):
                    continue
                (job_id,) = db.execute(
                    "SELECT id FROM jobs WHERE status = 'queued' AND endpoint = ? ORDER BY created LIMIT 1",
                    (head["endpoint"],),
                ).fetchone()
                db.execute(
                    "UPDATE jobs SET status = 'running', started = ?, claimed_by = ?, attempts = attempts + 1"
                    " WHERE id = ?",
                    (self.clock(), claimer, job_id),
                )
                self._seen(db, claimer)
                query = f"SELECT {_COLUMNS}, request_body FROM jobs WHERE id = ?"  # the runner needs the body
                return _job(db.execute(query, (job_id,)).fetchone())
        return None

    def _seen(self, db: sqlite3.Connection, claimer: str) -> None:
        db.execute(
            "INSERT INTO claimers (claimer, seen) VALUES (?, ?)"
            " ON CONFLICT (claimer) DO UPDATE SET seen = excluded.seen",
            (claimer, self.clock()),
        )

    def heartbeat(self, claimer: str, running: list[str]) -> list[str]:
        """``claimer`` is alive and runs ``running``; returns those cancelled meanwhile."""
        if not self._exists():
            return []
        with self._transaction() as db:
            self._seen(db, claimer)
            if not running:
                return []
            marks = ",".join("?" * len(running))
            rows = db.execute(f"SELECT id FROM jobs WHERE id IN ({marks}) AND status != 'running'", running)
            return [row["id"] for row in rows.fetchall()]

    def finish(self, job_id: str, response: StoredResponse, status: JobStatus, error: str | None = None) -> None:
        """A run answered; a job cancelled meanwhile stays cancelled."""
        with self._transaction() as db:
            db.execute(
                "UPDATE jobs SET status = ?, finished = ?, response = ?, body = ?, error = ?"
                " WHERE id = ? AND status = 'running'",
                (status, self.clock(), json.dumps(response.head_json()), response.body, error, job_id),
            )

    def fail(self, job_id: str, reason: str) -> None:
        """A queued or running job failed without a response, for ``reason``."""
        with self._transaction() as db:
            db.execute(
                "UPDATE jobs SET status = 'failed', finished = ?, error = ?"
                " WHERE id = ? AND status IN ('queued', 'running')",
                (self.clock(), reason, job_id),
            )

    def requeue(self, job_id: str, ran: bool = True) -> None:
        """A running job goes back to the queue (not ``ran``: the attempt is not counted)."""
        with self._transaction() as db:
            db.execute(
                "UPDATE jobs SET status = 'queued', started = NULL, claimed_by = NULL,"
                " attempts = attempts - ? WHERE id = ? AND status = 'running'",
                (0 if ran else 1, job_id),
            )

    def cancel(self, job_id: str) -> Job:
        """Cancel a queued or running job (its runner learns it from its next heartbeat).
        Raises NotCancellable once it has finished, KeyError when there is no such job."""
        with self._transaction(durable=True) as db:
            row = db.execute("SELECT status FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None:
                raise KeyError(job_id)
            if row["status"] in FINISHED:
                raise NotCancellable(f"the job has finished: {row['status']}", row["status"])
            db.execute("UPDATE jobs SET status = 'cancelled', finished = ? WHERE id = ?", (self.clock(), job_id))
            return _job(db.execute(f"SELECT {_COLUMNS} FROM jobs WHERE id = ?", (job_id,)).fetchone())

    def recover(self, visibility: float, pid_alive: Callable[[int], bool]) -> list[str]:
        """Running jobs whose claimer is gone run again (idempotent, first attempt) or fail."""
        if not self._exists():
            return []
        with self._transaction() as db:
            seen = dict(db.execute("SELECT claimer, seen FROM claimers").fetchall())
            rows = db.execute("SELECT id, claimed_by, attempts, options FROM jobs WHERE status = 'running'").fetchall()
            stale = self.clock() - visibility
            lost = []
            for row in rows:
                claimer = row["claimed_by"] or ""
                if not (claimer_gone(claimer, pid_alive) or seen.get(claimer, 0.0) < stale):
                    continue
                lost.append(row["id"])
                if JobOptions.from_json(json.loads(row["options"])).idempotent and row["attempts"] < 2:
                    db.execute(
                        "UPDATE jobs SET status = 'queued', started = NULL, claimed_by = NULL WHERE id = ?",
                        (row["id"],),
                    )
                else:
                    db.execute(
                        "UPDATE jobs SET status = 'failed', finished = ?, error = ? WHERE id = ?",
                        (self.clock(), LOST_REASON, row["id"]),
                    )
            db.execute("DELETE FROM claimers WHERE seen < ?", (stale - visibility,))
        return lost

    def expire(self, ttl: float) -> int:
        """Jobs finished more than ``ttl`` ago become expired; older tombstones go. Queued jobs
        never expire: nothing accepted is dropped unrun."""
        if not self._exists():
            return 0
        cutoff = self.clock() - ttl
        with self._transaction() as db:
            expired = db.execute(
                "UPDATE jobs SET status = 'expired', expired = ?, request = NULL, request_body = NULL,"
                " response = NULL, body = NULL WHERE status IN ('succeeded', 'failed', 'cancelled') AND finished < ?",
                (self.clock(), cutoff),
            ).rowcount
            gone = db.execute("DELETE FROM jobs WHERE status = 'expired' AND expired < ?", (cutoff,)).rowcount
        return expired + gone

    def waiting(self) -> tuple[int, float]:
        """Queued jobs and the oldest one's age in seconds."""
        rows = self._rows("SELECT COUNT(*), MIN(created) FROM jobs WHERE status = 'queued'")
        if not rows or not rows[0][0]:
            return 0, 0.0
        return int(rows[0][0]), max(0.0, self.clock() - rows[0][1])

    def counts(self) -> JobCounts:
        """Jobs by status, and the age in seconds of the oldest queued one."""
        found = dict((row[0], row[1]) for row in self._rows("SELECT status, COUNT(*) FROM jobs GROUP BY status"))
        oldest = self._rows("SELECT MIN(created) FROM jobs WHERE status = 'queued'")
        first = oldest[0][0] if oldest else None
        age = max(0.0, self.clock() - first) if first is not None else 0.0
        return JobCounts({status: int(found.get(status, 0)) for status in STATUSES}, age)


def _job(row: sqlite3.Row) -> Job:
    head = json.loads(row["request"]) if row["request"] else {"method": "", "target": "", "headers": []}
    # sqlite3.Row: `in row` would look among the values, not the column names.
    body = bytes(row["request_body"] or b"") if "request_body" in row.keys() else b""  # noqa: SIM118
    return Job(
        id=row["id"],
        endpoint=row["endpoint"],
        status=row["status"],
        owner=row["owner"],
        request=StoredRequest.from_parts(head, body),
        options=JobOptions.from_json(json.loads(row["options"])),
        created=row["created"],
        started=row["started"],
        finished=row["finished"],
        claimed_by=row["claimed_by"],
        attempts=row["attempts"],
        response_head=json.loads(row["response"]) if row["response"] else None,
        error=row["error"],
    )
