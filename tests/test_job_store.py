"""The jobs' durable store (issue 15, in progress): several processes share one SQLite file and
never claim the same job; idempotency keys, limits, cancel, recovery and expiry."""

from __future__ import annotations

import multiprocessing

import pytest

from fngw.jobs import IdempotencyConflict, NotCancellable, QueueFull, SqliteJobStore

REQUEST = {"method": "POST", "path": "/score", "query": "", "headers": {}, "body": "{}"}


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def store(tmp_path):
    return SqliteJobStore(tmp_path / "jobs" / "jobs.db", clock=Clock())


def test_a_job_is_queued_claimed_once_and_finished(store):
    job, new = store.submit("POST /score", REQUEST, owner="ops")
    assert new and job.status == "queued" and len(job.id) >= 24
    claimed = store.claim("worker-1")
    assert claimed is not None and (claimed.id, claimed.status, claimed.claimed_by) == (job.id, "running", "worker-1")
    assert store.claim("worker-2") is None
    store.finish(job.id, {"status": 200, "headers": [["Content-Type", "text/plain"]], "body": "aGk="})
    done = store.get(job.id)
    assert done is not None and done.status == "succeeded" and done.response["status"] == 200


def test_jobs_are_claimed_oldest_first_among_the_endpoints_that_can_run(store):
    clock = store.clock
    first, _ = store.submit("GET /busy", REQUEST)
    clock.now += 1
    second, _ = store.submit("GET /free", REQUEST)
    claimed = store.claim("w", endpoints=lambda endpoint: endpoint == "GET /free")
    assert claimed is not None and claimed.id == second.id
    assert store.claim("w").id == first.id


def test_idempotency_keys_return_the_same_job_or_refuse_another_request(store):
    job, new = store.submit("POST /score", REQUEST, owner="ops", idempotency_key="k1")
    again, new_again = store.submit("POST /score", REQUEST, owner="ops", idempotency_key="k1")
    assert new and not new_again and again.id == job.id
    with pytest.raises(IdempotencyConflict):
        store.submit("POST /score", {**REQUEST, "body": '{"x": 1}'}, owner="ops", idempotency_key="k1")
    other, new_other = store.submit("POST /score", REQUEST, owner="partner", idempotency_key="k1")
    assert new_other and other.id != job.id  # keys belong to their caller


def test_max_queued_refuses_more(store):
    store.submit("POST /score", REQUEST, max_queued=2)
    store.submit("POST /score", REQUEST, max_queued=2)
    with pytest.raises(QueueFull):
        store.submit("POST /score", REQUEST, max_queued=2)


def test_cancel_queued_and_running_but_not_finished(store):
    queued, _ = store.submit("POST /score", REQUEST)
    assert store.cancel(queued.id).status == "cancelled"
    assert store.claim("w") is None  # a cancelled job never runs
    running, _ = store.submit("POST /score", REQUEST)
    store.claim("w")
    assert store.cancel(running.id).status == "cancelled"
    store.finish(running.id, {"status": 200})  # the runner finishing late does not undo the cancel
    assert store.get(running.id).status == "cancelled"
    with pytest.raises(NotCancellable):
        store.cancel(running.id)
    with pytest.raises(KeyError):
        store.cancel("nope")


def test_a_dead_claimers_jobs_fail_with_a_reason_and_queued_ones_stay(store):
    lost, _ = store.submit("POST /score", REQUEST)
    waiting, _ = store.submit("POST /score", REQUEST)
    store.claim("worker-9")
    assert store.recover(alive=lambda claimer: claimer != "worker-9") == [lost.id]
    assert "stopped before it finished" in store.get(lost.id).error
    assert store.get(waiting.id).status == "queued"


def test_finished_jobs_expire_after_the_ttl_and_counts(store):
    done, _ = store.submit("POST /score", REQUEST)
    store.claim("w")
    store.finish(done.id, {"status": 200})
    waiting, _ = store.submit("POST /score", REQUEST)
    store.clock.now += 30
    counts = store.counts()
    assert counts["succeeded"] == 1 and counts["queued"] == 1 and counts["oldest_queued_age"] == 30
    store.clock.now += 3600
    assert store.expire(ttl=3600) == 1 and store.get(done.id) is None and store.get(waiting.id) is not None
    assert [j.id for j in store.jobs(everyone=True)] == [waiting.id]


def _claim_all(path: str, claimer: str, found: multiprocessing.Queue) -> None:
    store = SqliteJobStore(__import__("pathlib").Path(path))
    while (job := store.claim(claimer)) is not None:
        found.put(job.id)
    found.put(None)


def test_workers_in_several_processes_never_claim_one_job_twice(tmp_path):
    path = tmp_path / "jobs.db"
    store = SqliteJobStore(path)
    submitted = {store.submit("POST /score", REQUEST)[0].id for _ in range(200)}
    found: multiprocessing.Queue = multiprocessing.Queue()
    workers = [multiprocessing.Process(target=_claim_all, args=(str(path), f"w{i}", found)) for i in range(3)]
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
