"""The job stores' contract, the same for every store: submit with limits and idempotency keys,
claim each job once (across processes), heartbeats that report cancels, finish/fail/cancel,
recovery of a lost runner's jobs (idempotent ones run again once), expiry, counts."""

from __future__ import annotations

import multiprocessing
import time
import uuid
from pathlib import Path

import pytest

from fngw.jobs import (
    IdempotencyConflict,
    JobOptions,
    JobQueueFull,
    NotCancellable,
    SqliteJobStore,
    StoredRequest,
    StoredResponse,
)
from fngw.jobs.model import claimer_id
from fngw.jobs.redis_store import RedisJobStore

REQUEST = StoredRequest("POST", "/score", (("Content-Type", "application/json"),), b"{}")
OPTIONS = JobOptions(timeout=60.0)
OK = StoredResponse(200, (("Content-Type", "text/plain"),), b"hi")


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def everything(_: str) -> bool:
    return True


def alive(_: int) -> bool:
    return True


def make_store(kind: str, tmp_path: Path, redis_server, clock=None):
    extra = {"clock": clock} if clock is not None else {}
    if kind == "sqlite":
        return SqliteJobStore(tmp_path / "jobs" / "jobs.db", **extra)
    return RedisJobStore(redis_server.url, prefix=f"test:{uuid.uuid4().hex}", **extra)


@pytest.fixture(params=["sqlite", "redis"])
def kind(request):
    return request.param


@pytest.fixture
def store(kind, tmp_path, request):
    server = request.getfixturevalue("redis_server") if kind == "redis" else None
    return make_store(kind, tmp_path, server, Clock())


def test_sqlite_writes_nothing_until_the_first_job(tmp_path):
    store = SqliteJobStore(tmp_path / "jobs.db")
    assert store.get("x") is None and store.claim("w", everything) is None and store.counts().by_status["queued"] == 0
    assert store.heartbeat("w", []) == [] and store.recover(30, alive) == [] and store.expire(10) == 0
    assert not (tmp_path / "jobs.db").exists()
    store.submit("POST /score", REQUEST, OPTIONS)
    assert (tmp_path / "jobs.db").stat().st_mode & 0o777 == 0o600  # requests are the callers' data


def test_a_job_is_queued_claimed_once_and_finished(store):
    job, new = store.submit("POST /score", REQUEST, OPTIONS, owner="ops")
    assert new and job.status == "queued" and len(job.id) == 24
    assert job.request.target == "/score" and job.request.body == b""  # status reads leave the body out
    claimed = store.claim("worker-1", everything)
    assert claimed is not None and (claimed.id, claimed.status, claimed.claimed_by) == (job.id, "running", "worker-1")
    assert claimed.request == REQUEST  # the runner gets it whole
    assert claimed.attempts == 1 and store.claim("worker-2", everything) is None
    store.finish(job.id, OK, "succeeded")
    done = store.get(job.id)
    assert done is not None and done.status == "succeeded" and done.has_result
    assert store.result(job.id) == OK


def test_bodies_of_any_bytes_survive(store):
    request = StoredRequest("POST", "/b?x=%FF", (("X-A", "é"),), bytes(range(256)))
    job, _ = store.submit("POST /b", request, OPTIONS)
    assert store.claim("w", everything).request == request
    store.finish(job.id, StoredResponse(200, (), bytes(range(256)) * 3), "succeeded")
    assert store.result(job.id).body == bytes(range(256)) * 3


def test_jobs_are_claimed_oldest_first_among_the_endpoints_that_can_run(store):
    first, _ = store.submit("GET /busy", REQUEST, OPTIONS)
    store.clock.now += 1
    second, _ = store.submit("GET /free", REQUEST, OPTIONS)
    claimed = store.claim("w", lambda endpoint: endpoint == "GET /free")
    assert claimed is not None and claimed.id == second.id
    assert store.claim("w", everything).id == first.id


def test_idempotency_keys_return_the_same_job_or_refuse_another_request(store):
    job, new = store.submit("POST /score", REQUEST, OPTIONS, owner="ops", idempotency_key="k1")
    # The same call again, with headers that differ between retries: the same job.
    retry = StoredRequest("POST", "/score", (("Content-Type", "application/json"), ("X-Request-Id", "2")), b"{}")
    again, new_again = store.submit("POST /score", retry, OPTIONS, owner="ops", idempotency_key="k1")
    assert new and not new_again and again.id == job.id
    with pytest.raises(IdempotencyConflict):
        other_body = StoredRequest("POST", "/score", REQUEST.headers, b'{"x": 1}')
        store.submit("POST /score", other_body, OPTIONS, owner="ops", idempotency_key="k1")
    with pytest.raises(IdempotencyConflict):  # the result's form depends on Accept: another request
        as_png = StoredRequest("POST", "/score", (*REQUEST.headers, ("Accept", "image/png")), b"{}")
        store.submit("POST /score", as_png, OPTIONS, owner="ops", idempotency_key="k1")
    other, new_other = store.submit("POST /score", REQUEST, OPTIONS, owner="partner", idempotency_key="k1")
    assert new_other and other.id != job.id  # keys belong to their caller


def test_max_queued_refuses_more(store):
    store.submit("POST /score", REQUEST, OPTIONS, max_queued=2)
    store.submit("POST /score", REQUEST, OPTIONS, max_queued=2)
    with pytest.raises(JobQueueFull):
        store.submit("POST /score", REQUEST, OPTIONS, max_queued=2)


def test_cancel_queued_and_running_but_not_finished(store):
    queued, _ = store.submit("POST /score", REQUEST, OPTIONS)
    assert store.cancel(queued.id).status == "cancelled"
    assert store.claim("w", everything) is None  # a cancelled job never runs
    running, _ = store.submit("POST /score", REQUEST, OPTIONS)
    store.claim("w", everything)
    assert store.heartbeat("w", [running.id]) == []
    assert store.cancel(running.id).status == "cancelled"
    assert store.heartbeat("w", [running.id]) == [running.id]  # the runner learns of it
    store.finish(running.id, OK, "succeeded")  # the runner finishing late does not undo the cancel
    assert store.get(running.id).status == "cancelled"
    with pytest.raises(NotCancellable):
        store.cancel(running.id)
    with pytest.raises(KeyError):
        store.cancel("nope")


def test_a_lost_runners_jobs_fail_with_a_reason_idempotent_ones_run_again_once(kind, tmp_path, request):
    server = request.getfixturevalue("redis_server") if kind == "redis" else None
    store = make_store(kind, tmp_path, server)  # real time: Redis measures idle time itself
    lost, _ = store.submit("POST /score", REQUEST, OPTIONS)
    retried, _ = store.submit("POST /score", REQUEST, JobOptions(timeout=60.0, idempotent=True))
    waiting, _ = store.submit("POST /score", REQUEST, OPTIONS)
    dead = "elsewhere:1:aa"
    store.claim(dead, everything)
    store.claim(dead, everything)
    store.claim("healthy", everything)  # takes `waiting`, and keeps beating
    time.sleep(0.4)
    store.heartbeat("healthy", [waiting.id])
    assert sorted(store.recover(0.3, alive)) == sorted([lost.id, retried.id])
    assert "stopped before it finished" in store.get(lost.id).error and store.get(lost.id).status == "failed"
    assert store.get(retried.id).status == "queued" and store.get(waiting.id).status == "running"
    again = store.claim(dead, everything)
    assert again is not None and again.id == retried.id and again.attempts == 2
    time.sleep(0.4)
    store.heartbeat("healthy", [waiting.id])
    assert store.recover(0.3, alive) == [retried.id] and store.get(retried.id).status == "failed"  # once only


def test_a_claimer_whose_process_ended_is_lost_at_once(store):
    job, _ = store.submit("POST /score", REQUEST, OPTIONS)
    me = claimer_id()
    store.claim(me, everything)
    assert store.recover(30, alive) == []
    assert store.recover(30, lambda pid: False) == [job.id]


def test_requeue_puts_a_running_job_back(store):
    job, _ = store.submit("POST /score", REQUEST, OPTIONS)
    store.claim("w", everything)
    store.requeue(job.id)
    again = store.claim("v", everything)
    assert again.id == job.id and again.attempts == 2
    store.requeue(job.id, ran=False)  # its cell never started: not an attempt
    assert store.get(job.id).attempts == 1 and store.claim("v", everything).attempts == 2


def test_redis_expires_a_finished_jobs_keys_itself_as_a_backstop(redis_server):
    store = RedisJobStore(redis_server.url, prefix=f"test:{uuid.uuid4().hex}", ttl=60)
    job, _ = store.submit("POST /score", REQUEST, OPTIONS, idempotency_key="k")
    assert store.redis.ttl(store._job_key(job.id)) == -1  # queued: never expires
    store.claim("w", everything)
    store.finish(job.id, OK, "succeeded")
    assert 170 <= store.redis.ttl(store._job_key(job.id)) <= 180
    assert 170 <= store.redis.ttl(store._key("idem", "", "k")) <= 180


def test_redis_a_job_delivered_to_a_runner_that_died_before_starting_it_is_delivered_again(redis_server):
    store = RedisJobStore(redis_server.url, prefix=f"test:{uuid.uuid4().hex}")
    job, _ = store.submit("POST /score", REQUEST, OPTIONS)
    stream = store._stream("POST /score")
    # What a runner that died between reading the stream and starting the job leaves behind.
    assert store.redis.xreadgroup("runners", "elsewhere:1:aa", {stream: ">"}, count=1)
    assert store.claim("w", everything) is None and store.get(job.id).status == "queued"
    time.sleep(0.4)
    assert store.recover(0.3, alive) == []  # not a lost run: nothing ran
    claimed = store.claim("w", everything)
    assert claimed is not None and claimed.id == job.id and claimed.attempts == 1


def test_finished_jobs_expire_then_go_and_queued_ones_stay(store):
    done, _ = store.submit("POST /score", REQUEST, OPTIONS)
    store.claim("w", everything)
    store.finish(done.id, OK, "succeeded")
    store.clock.now += 30
    waiting, _ = store.submit("POST /score", REQUEST, OPTIONS)
    store.clock.now += 30
    counts = store.counts()
    assert counts.by_status["succeeded"] == 1 and counts.by_status["queued"] == 1 and counts.oldest_queued_age == 30
    store.clock.now += 3600
    assert store.expire(ttl=3600) == 1
    expired = store.get(done.id)
    assert expired.status == "expired" and not expired.has_result and store.result(done.id) is None
    assert expired.finished == 1_000_000.0  # when it finished, not when it expired
    assert store.get(waiting.id).status == "queued"  # however long it waited: nothing accepted is dropped
    store.clock.now += 3601
    store.expire(ttl=3600)
    assert store.get(done.id) is None and [j.id for j in store.jobs(everyone=True)] == [waiting.id]


def test_listing_by_owner_and_status(store):
    a, _ = store.submit("POST /score", REQUEST, OPTIONS, owner="ops")
    store.clock.now += 1
    b, _ = store.submit("POST /score", REQUEST, OPTIONS, owner="ops")
    store.submit("POST /score", REQUEST, OPTIONS, owner="partner")
    store.cancel(b.id)
    assert [j.id for j in store.jobs(owner="ops")] == [a.id, b.id]
    assert [j.id for j in store.jobs(owner="ops", status="cancelled")] == [b.id]
    assert len(store.jobs(everyone=True)) == 3


def _claim_all(kind: str, where: str, prefix: str, claimer: str, found: multiprocessing.Queue) -> None:
    store = SqliteJobStore(Path(where)) if kind == "sqlite" else RedisJobStore(where, prefix=prefix)
    while (job := store.claim(claimer, everything)) is not None:
        found.put(job.id)
    found.put(None)


def test_runners_in_several_processes_never_claim_one_job_twice(kind, tmp_path, request):
    prefix = f"test:{uuid.uuid4().hex}"
    if kind == "sqlite":
        where = str(tmp_path / "jobs.db")
        store = SqliteJobStore(Path(where))
    else:
        where = request.getfixturevalue("redis_server").url
        store = RedisJobStore(where, prefix=prefix)
    submitted = {store.submit("POST /score", REQUEST, OPTIONS)[0].id for _ in range(200)}
    found: multiprocessing.Queue = multiprocessing.Queue()
    args = [(kind, where, prefix, f"w{i}", found) for i in range(3)]
    workers = [multiprocessing.Process(target=_claim_all, args=a) for a in args]
    for worker in workers:
        worker.start()
    claimed, ended = [], 0
    while ended < len(workers):
        item = found.get(timeout=60)
        if item is None:
            ended += 1
        else:
            claimed.append(item)
    for worker in workers:
        worker.join(timeout=30)
    assert sorted(claimed) == sorted(submitted)  # each exactly once
