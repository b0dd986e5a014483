"""Jobs in Redis, shared by every instance that serves the manifest (redis-py).

Layout, under the prefix ``fngw:jobs`` (``{id}`` a job id, ``{endpoint}`` "POST /score"):

- ``…:job:{id}``: a hash per job (fields as ``Job``; the request, options and response head as
  JSON, the body as bytes).
- ``…:stream:{endpoint}``: a stream per endpoint with the consumer group ``runners``: each entry
  names one queued job; an instance reads from the streams of the endpoints it can run now, so
  it only takes work it has a free kernel for. A delivered entry stays pending (its runner's)
  until the job finishes; runners refresh their entries' idle time as heartbeats, so an entry
  idle longer than the visibility timeout belongs to a runner that is gone.
- ``…:queued`` (score: created), ``…:finished`` (score: finished), ``…:owner:{owner}`` and
  ``…:all`` (score: created): sorted sets for limits, counts, expiry and listing.
- ``…:idem:{owner}:{key}``: the job an idempotency key named.

Every change of a job's status is one Lua script, so two instances never both move one job.
Unreachable Redis raises ``StoreUnavailable``; the client reconnects by itself when it is back.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import redis
import redis.exceptions

from .model import (
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
    StoreUnavailable,
    claimer_gone,
    new_job_id,
)

PREFIX = "fngw:jobs"
GROUP = "runners"
ENDPOINTS_FRESH = 1.0  # seconds a claim trusts its last read of the endpoints that have jobs

# KEYS: job, queued, all, owner, idem, stream, endpoints
# ARGV: id, endpoint, owner, request, fingerprint, key, options, now, max_queued
_SUBMIT = """
if KEYS[5] ~= '' then
  local earlier = redis.call('GET', KEYS[5])
  if earlier then
    local fp = redis.call('HGET', KEYS[1]:sub(1, -#ARGV[1] - 1) .. earlier, 'fingerprint')
    if fp and fp ~= ARGV[5] then return {'conflict'} end
    if fp then return {'earlier', earlier} end
  end
end
if tonumber(ARGV[9]) > 0 and redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[9]) then
  return {'full', redis.call('ZCARD', KEYS[2])}
end
local entry = redis.call('XADD', KEYS[6], '*', 'id', ARGV[1])
redis.call('HSET', KEYS[1], 'id', ARGV[1], 'endpoint', ARGV[2], 'status', 'queued', 'owner', ARGV[3],
  'request', ARGV[4], 'request_body', ARGV[10], 'fingerprint', ARGV[5], 'idem', KEYS[5],
  'options', ARGV[7], 'created', ARGV[8], 'attempts', 0, 'entry', entry, 'stream', KEYS[6])
redis.call('ZADD', KEYS[2], ARGV[8], ARGV[1])
redis.call('ZADD', KEYS[3], ARGV[8], ARGV[1])
redis.call('ZADD', KEYS[4], ARGV[8], ARGV[1])
redis.call('SADD', KEYS[7], ARGV[2])
if KEYS[5] ~= '' then redis.call('SET', KEYS[5], ARGV[1]) end
return {'new', ARGV[1]}
"""

# KEYS: job, queued; ARGV: claimer, now, entry. Start a delivered job unless it is no longer
# queued; returns the started job's fields (one round trip for the runner), or 0.
_START = """
local status = redis.call('HGET', KEYS[1], 'status')
if status ~= 'queued' or redis.call('HGET', KEYS[1], 'entry') ~= ARGV[3] then return 0 end
redis.call('HSET', KEYS[1], 'status', 'running', 'started', ARGV[2], 'claimed_by', ARGV[1])
redis.call('HINCRBY', KEYS[1], 'attempts', 1)
redis.call('ZREM', KEYS[2], redis.call('HGET', KEYS[1], 'id'))
return redis.call('HGETALL', KEYS[1])
"""

# KEYS: job, queued, finished; ARGV: new status, now, from statuses (comma list), then field/value pairs.
_MOVE = """
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return {'missing'} end
if not string.find(',' .. ARGV[3] .. ',', ',' .. status .. ',', 1, true) then return {'not', status} end
local id = redis.call('HGET', KEYS[1], 'id')
redis.call('HSET', KEYS[1], 'status', ARGV[1], 'finished', ARGV[2])
for i = 4, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
redis.call('ZREM', KEYS[2], id)
redis.call('ZADD', KEYS[3], ARGV[2], id)
local stream, entry = redis.call('HGET', KEYS[1], 'stream'), redis.call('HGET', KEYS[1], 'entry')
if status == 'running' then
  redis.call('XACK', stream, 'runners', entry)
  redis.call('XDEL', stream, entry)
end
return {'moved', status}
"""

# KEYS: job, queued, finished; ARGV: expected claimer, now, reason, "requeue" or "", the pending
# entry ("" if none), "0" when the run never started its cell (the attempt is not counted).
# A run whose runner is gone: requeued (asked, or idempotent on its first attempt) or failed, only
# if still that claimer's. A job whose entry was delivered but never started (its runner died
# between reading the stream and starting the job) is delivered again.
_LOST = """
local status = redis.call('HGET', KEYS[1], 'status')
local id = redis.call('HGET', KEYS[1], 'id')
local stream, entry = redis.call('HGET', KEYS[1], 'stream'), redis.call('HGET', KEYS[1], 'entry')
if status == 'queued' and ARGV[5] ~= '' and entry == ARGV[5] then
  redis.call('XACK', stream, 'runners', entry)
  redis.call('XDEL', stream, entry)
  redis.call('HSET', KEYS[1], 'entry', redis.call('XADD', stream, '*', 'id', id))
  return 3
end
if status ~= 'running' or redis.call('HGET', KEYS[1], 'claimed_by') ~= ARGV[1] then
  return 0
end
redis.call('XACK', stream, 'runners', entry)
redis.call('XDEL', stream, entry)
local options = cjson.decode(redis.call('HGET', KEYS[1], 'options'))
if ARGV[4] == 'requeue' or (options['idempotent'] and tonumber(redis.call('HGET', KEYS[1], 'attempts')) < 2) then
  local fresh = redis.call('XADD', stream, '*', 'id', id)
  redis.call('HSET', KEYS[1], 'status', 'queued', 'claimed_by', '', 'entry', fresh)
  redis.call('HDEL', KEYS[1], 'started')
  if ARGV[6] == '0' then redis.call('HINCRBY', KEYS[1], 'attempts', -1) end
  redis.call('ZADD', KEYS[2], redis.call('HGET', KEYS[1], 'created'), id)
  return 1
end
redis.call('HSET', KEYS[1], 'status', 'failed', 'finished', ARGV[2], 'error', ARGV[3])
redis.call('ZADD', KEYS[3], ARGV[2], id)
return 2
"""


class RedisJobStore:
    """The jobs in the Redis database at ``url`` (``redis://[user:password@]host:port/db``;
    ``rediss://`` for TLS). ``client`` replaces the connection (tests)."""

    def __init__(
        self,
        url: str,
        *,
        clock: Callable[[], float] = time.time,
        prefix: str = PREFIX,
        client: redis.Redis | None = None,
        ttl: float | None = None,
    ):
        self.url = url
        self.clock = clock
        self.prefix = prefix
        self.ttl = ttl  # jobs.ttl: a finished job's keys also expire in Redis itself after three of it
        # Short timeouts: an unreachable Redis must answer submissions with a 503 soon, not hang them.
        # Any: redis-py's hints cover str and bytes replies at once; with decode_responses off (bodies
        # are bytes) every reply here is bytes, which the code below relies on.
        self.redis: Any = client or redis.Redis.from_url(
            url, socket_timeout=5.0, socket_connect_timeout=2.0, health_check_interval=15
        )
        self._submit = self.redis.register_script(_SUBMIT)
        self._start = self.redis.register_script(_START)
        self._move = self.redis.register_script(_MOVE)
        self._lost = self.redis.register_script(_LOST)
        self._groups: set[str] = set()
        self._endpoint_names: list[bytes] = []
        self._endpoints_read = -ENDPOINTS_FRESH

    def describe(self) -> str:
        """The URL without its password."""
        scheme, _, rest = self.url.partition("://")
        return f"{scheme}://{rest.rpartition('@')[2]}"

    # --- keys ------------------------------------------------------------------------------------

    def _key(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))

    def _job_key(self, job_id: str) -> str:
        return self._key("job", job_id)

    def _owner_key(self, owner: str | None) -> str:
        return self._key("owner", owner if owner is not None else "")

    # --- plumbing --------------------------------------------------------------------------------

    @contextmanager
    def _reachable(self) -> Iterator[None]:
        try:
            yield
        except redis.exceptions.AuthenticationError as exc:  # a ConnectionError, but not a network fault
            raise StoreUnavailable(
                f"Redis at {self.describe()} refused this gateway's credentials (the user and password of"
                f" jobs.store): {exc}"
            ) from None
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
            raise StoreUnavailable(f"Redis at {self.describe()}: {exc}") from None
        except redis.exceptions.ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            # Redis restarted without its data: the consumer groups are made again on the next call.
            self._groups.clear()
            raise StoreUnavailable(f"Redis at {self.describe()} lost its consumer groups; recreating them") from None

    def _stream(self, endpoint: str) -> str:
        stream = self._key("stream", endpoint)
        if stream not in self._groups:
            try:
                self.redis.xgroup_create(stream, GROUP, id="0", mkstream=True)
            except redis.exceptions.ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise
            self._groups.add(stream)
        return stream

    def _read(self, job_id: str) -> Job | None:
        """The job without its request and response bodies (a status read stays small)."""
        values = self.redis.hmget(self._job_key(job_id), _FIELDS)
        fields = {name.encode(): value for name, value in zip(_FIELDS, values, strict=True) if value is not None}
        return _job(fields) if fields else None

    # --- the store -------------------------------------------------------------------------------

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
        job_id = new_job_id()
        idem = self._key("idem", owner or "", idempotency_key) if idempotency_key is not None else ""
        with self._reachable():
            stream = self._stream(endpoint)
            keys = [
                self._job_key(job_id),
                self._key("queued"),
                self._key("all"),
                self._owner_key(owner),
                idem,
                stream,
                self._key("endpoints"),
            ]
            args: list[str | int | bytes] = [
                job_id,
                endpoint,
                owner if owner is not None else "",
                json.dumps(request.head_json()),
                request.fingerprint(),
                idempotency_key or "",
                json.dumps(options.to_json()),
                repr(self.clock()),
                max_queued or 0,
                request.body,
            ]
            outcome = self._submit(keys=keys, args=args)
            kind = outcome[0].decode()
            if kind == "conflict":
                raise IdempotencyConflict("this Idempotency-Key was used for a different request")
            if kind == "full":
                raise JobQueueFull(f"{int(outcome[1])} jobs are waiting, the most jobs.max_queued allows")
            job = self._read(outcome[1].decode())
        if endpoint.encode() not in self._endpoint_names:  # this process's runner sees it at once
            self._endpoint_names = sorted({*self._endpoint_names, endpoint.encode()})
        assert job is not None
        return job, kind == "new"

    def get(self, job_id: str) -> Job | None:
        """The job, or None."""
        with self._reachable():
            return self._read(job_id)

    def result(self, job_id: str) -> StoredResponse | None:
        """The response of a job that has one."""
        with self._reachable():
            head, body = self.redis.hmget(self._job_key(job_id), ["response", "body"])
        if not head:
            return None
        return StoredResponse.from_parts(json.loads(head), body or b"")

    def jobs(self, owner: str | None = None, status: str | None = None, everyone: bool = False) -> list[Job]:
        """Jobs of ``owner`` (or every job with ``everyone``), optionally of one status, oldest first."""
        index = self._key("all") if everyone else self._owner_key(owner)
        with self._reachable():
            ids = [raw.decode() for raw in self.redis.zrange(index, 0, -1)]
            pipe = self.redis.pipeline(transaction=False)
            for job_id in ids:
                pipe.hmget(self._job_key(job_id), _FIELDS)
            rows = [dict(zip((f.encode() for f in _FIELDS), values, strict=True)) for values in pipe.execute()]
            found = [_job({k: v for k, v in row.items() if v is not None}) for row in rows if row[b"id"] is not None]
        return [job for job in found if status is None or job.status == status]

    def queued(self) -> bool:
        """Whether any job waits."""
        with self._reachable():
            return bool(self.redis.zcard(self._key("queued")))

    def claim(self, claimer: str, endpoints: Callable[[str], bool]) -> Job | None:
        """A queued job of an endpoint ``endpoints`` accepts, now running for ``claimer``: each
        endpoint's jobs oldest first."""
        with self._reachable():
            asked = False
            for raw in self._endpoints():
                endpoint = raw.decode()
                if not endpoints(endpoint):
                    continue
                stream = self._stream(endpoint)
                asked = True
                while True:
                    delivered = self.redis.xreadgroup(GROUP, claimer, {stream: ">"}, count=1)
                    if not delivered:
                        break
                    entry_id, fields = delivered[0][1][0]
                    job_id = fields[b"id"].decode()
                    keys = [self._job_key(job_id), self._key("queued")]
                    started = self._start(keys=keys, args=[claimer, repr(self.clock()), entry_id])
                    if started:
                        return _job(dict(zip(started[::2], started[1::2], strict=True)))
                    # Cancelled while queued: the entry has no work left.
                    self.redis.xack(stream, GROUP, entry_id)
                    self.redis.xdel(stream, entry_id)
            if not asked:
                self.redis.ping()  # an answer of "nothing to do" must mean Redis said so
        return None

    def _endpoints(self) -> list[bytes]:
        """The endpoints that ever had a job, read at most once a second: a claim is then a read of
        each runnable endpoint's stream, not a read of the set too (an endpoint's first job waits at
        most a second longer to be seen)."""
        now = time.monotonic()
        if now - self._endpoints_read > ENDPOINTS_FRESH:
            self._endpoint_names = sorted(self.redis.smembers(self._key("endpoints")))
            self._endpoints_read = now
        return self._endpoint_names

    def heartbeat(self, claimer: str, running: list[str]) -> list[str]:
        """Refresh ``claimer``'s entries (their idle time is its heartbeat); the cancelled ones."""
        cancelled = []
        with self._reachable():
            if not running:
                self.redis.ping()  # a heartbeat always reaches Redis: it is how a runner learns Redis is back
            for job_id in running:
                status, stream, entry = self.redis.hmget(self._job_key(job_id), ["status", "stream", "entry"])
                if status != b"running":
                    cancelled.append(job_id)
                    continue
                self.redis.xclaim(stream, GROUP, claimer, 0, [entry], justid=True)
        return cancelled

    def _moved(self, job_id: str, status: str, allowed: str, *fields: Any) -> list[Any]:
        keys = [self._job_key(job_id), self._key("queued"), self._key("finished")]
        outcome = self._move(keys=keys, args=[status, repr(self.clock()), allowed, *fields])
        if outcome[0] == b"moved":
            self._backstop(job_id)
        return outcome

    def _backstop(self, job_id: str) -> None:
        """A finished job's keys expire in Redis too, after three ttl: runners' sweeps expire it
        first, but a Redis no gateway sweeps any more must not keep results for ever."""
        if self.ttl is None:
            return
        seconds = max(1, math.ceil(3 * self.ttl))
        key = self._job_key(job_id)
        idem = self.redis.hget(key, "idem")
        pipe = self.redis.pipeline(transaction=False)
        pipe.expire(key, seconds)
        if idem:
            pipe.expire(idem, seconds)
        pipe.execute()

    def finish(self, job_id: str, response: StoredResponse, status: JobStatus, error: str | None = None) -> None:
        """A run answered; a job cancelled meanwhile stays cancelled."""
        fields: list[Any] = ["response", json.dumps(response.head_json()), "body", response.body]
        if error is not None:
            fields += ["error", error]
        with self._reachable():
            self._moved(job_id, status, "running", *fields)

    def fail(self, job_id: str, reason: str) -> None:
        """A queued or running job failed without a response."""
        with self._reachable():
            self._moved(job_id, "failed", "queued,running", "error", reason)

    def requeue(self, job_id: str, ran: bool = True) -> None:
        """A running job goes back to the queue (not ``ran``: the attempt is not counted)."""
        with self._reachable():
            claimer = self.redis.hget(self._job_key(job_id), "claimed_by")
            if claimer:
                keys = [self._job_key(job_id), self._key("queued"), self._key("finished")]
                self._lost(keys=keys, args=[claimer, repr(self.clock()), "", "requeue", "", "1" if ran else "0"])

    def cancel(self, job_id: str) -> Job:
        """Cancel a queued or running job. Raises NotCancellable, KeyError."""
        with self._reachable():
            outcome = self._moved(job_id, "cancelled", "queued,running")
            kind = outcome[0].decode()
            if kind == "missing":
                raise KeyError(job_id)
            if kind == "not":
                status = outcome[1].decode()
                raise NotCancellable(f"the job has finished: {status}", status)
            job = self._read(job_id)
        assert job is not None
        return job

    def recover(self, visibility: float, pid_alive: Callable[[int], bool]) -> list[str]:
        """Pending entries idle past ``visibility`` (or of a claimer whose process ended) are lost runs."""
        lost = []
        with self._reachable():
            for raw in self.redis.smembers(self._key("endpoints")):
                stream = self._stream(raw.decode())
                for pending in self.redis.xpending_range(stream, GROUP, "-", "+", 1000):
                    consumer = pending["consumer"].decode()
                    idle = pending["time_since_delivered"] / 1000.0
                    if idle < visibility and not claimer_gone(consumer, pid_alive):
                        continue
                    entry = pending["message_id"]
                    found = self.redis.xrange(stream, entry, entry)
                    if not found:
                        self.redis.xack(stream, GROUP, entry)
                        continue
                    job_id = found[0][1][b"id"].decode()
                    keys = [self._job_key(job_id), self._key("queued"), self._key("finished")]
                    args = [consumer, repr(self.clock()), LOST_REASON, "", entry, "1"]
                    outcome = self._lost(keys=keys, args=args)
                    if outcome in (1, 2):
                        lost.append(job_id)
                        if outcome == 2:  # failed: finished
                            self._backstop(job_id)
                    elif outcome == 0:  # finished or cancelled meanwhile: only the entry was left
                        self.redis.xack(stream, GROUP, entry)
        return lost

    def expire(self, ttl: float) -> int:
        """Jobs finished more than ``ttl`` ago become expired; older tombstones go. Queued jobs
        never expire."""
        now = self.clock()
        cutoff = now - ttl
        count = 0
        with self._reachable():
            for raw in self.redis.zrangebyscore(self._key("finished"), "-inf", cutoff):
                job_id = raw.decode()
                job = self._read(job_id)
                if job is None:
                    self.redis.zrem(self._key("finished"), job_id)
                    continue
                if job.status == "expired":
                    self._forget(job)
                elif job.status in ("succeeded", "failed", "cancelled"):
                    # `finished` stays what it was; the index's score becomes the expiry time, after
                    # which (another ttl) the tombstone goes.
                    pipe = self.redis.pipeline()
                    pipe.hset(self._job_key(job_id), mapping={"status": "expired", "expired": repr(now)})
                    pipe.hdel(self._job_key(job_id), "request", "request_body", "response", "body")
                    pipe.zadd(self._key("finished"), {job_id: now})
                    pipe.execute()
                count += 1
        return count

    def _forget(self, job: Job) -> None:
        key = self._job_key(job.id)
        idem = self.redis.hget(key, "idem")
        pipe = self.redis.pipeline()
        pipe.delete(key)
        if idem:
            pipe.delete(idem)
        pipe.zrem(self._key("finished"), job.id)
        pipe.zrem(self._key("all"), job.id)
        pipe.zrem(self._owner_key(job.owner), job.id)
        pipe.execute()

    def waiting(self) -> tuple[int, float]:
        """Queued jobs and the oldest one's age in seconds (two sorted-set reads)."""
        with self._reachable():
            pipe = self.redis.pipeline(transaction=False)
            pipe.zcard(self._key("queued"))
            pipe.zrange(self._key("queued"), 0, 0, withscores=True)
            count, oldest = pipe.execute()
        return int(count), max(0.0, self.clock() - oldest[0][1]) if oldest else 0.0

    def counts(self) -> JobCounts:
        """Jobs by status (from the indexes: queued exactly, the rest by reading their jobs) and the
        oldest queued job's age."""
        with self._reachable():
            oldest = self.redis.zrange(self._key("queued"), 0, 0, withscores=True)
            ids = [raw.decode() for raw in self.redis.zrange(self._key("all"), 0, -1)]
            pipe = self.redis.pipeline(transaction=False)
            for job_id in ids:
                pipe.hget(self._job_key(job_id), "status")
            statuses = [s.decode() for s in pipe.execute() if s]
        by_status = {str(status): statuses.count(status) for status in STATUSES}
        age = max(0.0, self.clock() - oldest[0][1]) if oldest else 0.0
        return JobCounts(by_status, age)


def _text(fields: dict[bytes, bytes], name: str) -> str | None:
    value = fields.get(name.encode())
    return value.decode() if value not in (None, b"") else None


def _number(fields: dict[bytes, bytes], name: str) -> float | None:
    value = _text(fields, name)
    return float(value) if value is not None else None


# What a status read fetches: every field but the request's and the response's bodies.
_FIELDS = [
    "id", "endpoint", "status", "owner", "request", "options", "created", "started", "finished",
    "claimed_by", "attempts", "response", "error",
]  # fmt: skip


def _job(fields: dict[bytes, bytes]) -> Job:
    request = _text(fields, "request")
    empty = {"method": "", "target": "", "headers": []}
    response = _text(fields, "response")
    created = _number(fields, "created")
    return Job(
        id=fields[b"id"].decode(),
        endpoint=fields[b"endpoint"].decode(),
        status=fields[b"status"].decode(),  # type: ignore[arg-type]
        owner=_text(fields, "owner"),
        request=StoredRequest.from_parts(json.loads(request) if request else empty, fields.get(b"request_body", b"")),
        options=JobOptions.from_json(json.loads(fields[b"options"])),
        created=created if created is not None else 0.0,
        started=_number(fields, "started"),
        finished=_number(fields, "finished"),
        claimed_by=_text(fields, "claimed_by"),
        attempts=int(fields.get(b"attempts", b"0")),
        response_head=json.loads(response) if response else None,
        error=_text(fields, "error"),
    )
