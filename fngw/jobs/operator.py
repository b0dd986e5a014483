"""``fngw jobs list|show|cancel``: the jobs of a store, for operators.

The store is the one the manifest names (``jobs.store``, or its default SQLite file), or one given
with ``--store`` (``sqlite:///abs/path.db``, ``redis://host:port/db``). Reading a manifest starts no
kernel; the command talks to the store directly, so it sees every caller's jobs.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
from pathlib import Path
from typing import Any

from fngw.manifest import JobSettings, JobStoreLocation, load_manifest

from .model import Job, JobStore, NotCancellable, StoreUnavailable
from .sqlite_store import SqliteJobStore
from .stores import open_store
from .submission import representation, rfc3339

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def run(args: argparse.Namespace, manifest_default: str) -> int:
    """Exit 0 when done, 1 when the job cannot be cancelled or found, 2 on bad usage or an
    unreachable store."""
    args.base_url = "/"
    try:
        store = _store(args, manifest_default)
    except ValueError as exc:
        print(f"fngw jobs: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.action != "list" and not args.job_id:
        print(f"fngw jobs {args.action}: name the job (JOB_ID)", file=sys.stderr)
        return EXIT_USAGE
    try:
        if args.action == "list":
            return _list(store, args)
        if args.action == "show":
            return _show(store, args.job_id, args.base_url)
        return _cancel(store, args.job_id, args.json, args.base_url)
    except (StoreUnavailable, sqlite3.Error, OSError) as exc:
        print(f"fngw jobs: the store cannot be read: {exc}", file=sys.stderr)
        return EXIT_USAGE


def _store(args: argparse.Namespace, manifest_default: str) -> JobStore:
    if args.store:
        if args.store.startswith(("redis://", "rediss://")):
            return open_store(JobSettings(store=JobStoreLocation("redis", url=args.store)), Path("."))
        if args.store.startswith("sqlite:"):
            path = args.store.removeprefix("sqlite:")
            path = "/" + path.lstrip("/") if path.startswith("///") else path
            if not path.strip("/"):
                raise ValueError("--store sqlite: names no file (sqlite:///absolute/path.db or sqlite:relative.db)")
            if not Path(path).exists():
                raise ValueError(f"{path}: no such job store")
            return SqliteJobStore(Path(path).resolve())
        raise ValueError("--store must be sqlite:PATH or redis://host:port/db")
    manifest_path = Path(args.manifest or manifest_default)
    try:
        loaded = load_manifest(manifest_path)
    except OSError as exc:
        raise ValueError(
            f"cannot read the manifest {manifest_path} ({exc.strerror}); name one with --manifest or --store"
        ) from None
    if loaded.manifest is None:
        raise ValueError(f"{manifest_path} is not a valid manifest (see: fngw validate {manifest_path})")
    if loaded.manifest.jobs is None:
        raise ValueError(f"{manifest_path} turns jobs off (jobs: false)")
    args.base_url = loaded.manifest.server.base_url  # the hrefs the gateway itself gives
    return open_store(loaded.manifest.jobs, loaded.manifest.path)


def _row(job: Job) -> tuple[str, ...]:
    return (
        job.id,
        job.status,
        job.endpoint,
        job.owner or "-",
        rfc3339(job.created) or "",
        rfc3339(job.finished) or "-",
        job.error or "",
    )


def _list(store: JobStore, args: argparse.Namespace) -> int:
    jobs = store.jobs(status=args.status, everyone=True)
    if args.json:
        print(json.dumps([_document(job, args.base_url) for job in jobs], indent=2))
        return EXIT_OK
    rows = [("ID", "STATUS", "ENDPOINT", "OWNER", "CREATED", "FINISHED", "ERROR"), *map(_row, jobs)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    return EXIT_OK


def _document(job: Job, base_url: str = "/") -> dict[str, Any]:
    document = representation(job, base_url)
    document.update(
        owner=job.owner,
        attempts=job.attempts,
        request={"method": job.request.method, "target": job.request.target, "bytes": len(job.request.body)},
        options=job.options.to_json(),
    )
    if job.response_head is not None:
        document["response"] = job.response_head
    return document


def _show(store: JobStore, job_id: str, base_url: str) -> int:
    job = store.get(job_id)
    if job is None:
        print(f"fngw jobs: no job {job_id} in {store.describe()}", file=sys.stderr)
        return EXIT_FAILED
    print(json.dumps(_document(job, base_url), indent=2))
    return EXIT_OK


def _cancel(store: JobStore, job_id: str, as_json: bool, base_url: str) -> int:
    try:
        job = store.cancel(job_id)
    except KeyError:
        print(f"fngw jobs: no job {job_id} in {store.describe()}", file=sys.stderr)
        return EXIT_FAILED
    except NotCancellable as exc:
        print(f"fngw jobs: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(json.dumps(_document(job, base_url), indent=2) if as_json else f"{job.id} cancelled")
    return EXIT_OK
