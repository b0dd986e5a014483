"""The kernel API's shared records in Redis: what every instance of a deployment shares (issue 17).

The same records as ``shared.SharedKernels`` keeps in an instance's folder (kernels and sessions,
each a JSON object with an ``id``), in two Redis hashes, so that every instance sees every kernel
and counts ``max_kernels`` for the whole deployment. Each record is stamped with the ``instance``
that wrote it; each instance keeps a key of its own alive (``heartbeat``, at most every
``HEARTBEAT`` seconds, expiring after ``INSTANCE_TTL``), and ``prune`` forgets the records of an
instance whose key has expired: its kernels are reported gone within ``INSTANCE_TTL`` seconds of
its last heartbeat. The records hold kernels' connection keys: the Redis database is a secret
store (docs/kernel-api.md says how to protect it).
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar, cast

import redis
import redis.exceptions

from .errors import RegistryUnavailable
from .models import KernelRecord, SessionRecord

R = TypeVar("R", KernelRecord, SessionRecord)

PREFIX = "fngw:kernel_api"
INSTANCE_TTL = 30.0  # seconds without a heartbeat after which an instance's kernels are gone
HEARTBEAT = 5.0  # seconds between heartbeats
LOCK_TIMEOUT = 10.0  # seconds a holder may keep the lock (a crashed holder's lock frees itself)
# HSET only when the field exists: an owner's periodic publish must not bring back a kernel record
# that another instance removed (a DELETE) between its read and its write.
REPLACE_IF_PRESENT = """
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
  return 1
end
return 0
"""


class RedisRecords(Generic[R]):
    """JSON records keyed by id in the Redis hash ``key``, stamped with ``instance``."""

    def __init__(self, client: Any, key: str, instance: str, describe: Callable[[], str]):
        self.redis = client
        self.key = key
        self.instance = instance
        self._describe = describe

    @contextlib.contextmanager
    def _reachable(self) -> Iterator[None]:
        try:
            yield
        except redis.exceptions.AuthenticationError as exc:  # a ConnectionError, but not a network fault
            raise RegistryUnavailable(
                f"the kernel registry (Redis at {self._describe()}) refused this gateway's credentials"
                f" (the user and password of kernel_api.registry): {exc}"
            ) from None
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
            raise RegistryUnavailable(
                f"the kernel registry (Redis at {self._describe()}) is unreachable: {exc}"
            ) from None

    def write(self, record: R) -> None:
        """Store ``record`` (replacing the one with its id), stamped with this instance."""
        with self._reachable():
            self.redis.hset(self.key, record["id"], json.dumps({**record, "instance": self.instance}))

    def update(self, record: R) -> bool:
        """Replace the record with ``record``'s id only if there is one, in one step on the server
        (``REPLACE_IF_PRESENT``); whether it was there."""
        raw = json.dumps({**record, "instance": self.instance})
        with self._reachable():
            return bool(self.redis.eval(REPLACE_IF_PRESENT, 1, self.key, record["id"], raw))

    def read(self, record_id: str) -> R | None:
        """The record ``record_id``, or None."""
        with self._reachable():
            raw = self.redis.hget(self.key, record_id)
        if raw is None:
            return None
        try:
            record = json.loads(raw)
        except ValueError:
            return None
        return cast(R, record) if isinstance(record, dict) else None

    def remove(self, record_id: str) -> None:
        """Forget ``record_id`` (no error if it is gone)."""
        with self._reachable():
            self.redis.hdel(self.key, record_id)

    def ids(self) -> list[str]:
        """The ids of every record."""
        with self._reachable():
            return [i.decode() for i in self.redis.hkeys(self.key)]

    def all(self) -> list[R]:
        """Every readable record."""
        with self._reachable():
            values = self.redis.hvals(self.key)
        records = []
        for raw in values:
            with contextlib.suppress(ValueError):
                record = json.loads(raw)
                if isinstance(record, dict):
                    records.append(cast(R, record))
        return records

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Exclusive across every instance (a Redis lock that frees itself after LOCK_TIMEOUT
        seconds if its holder dies); waits cooperatively under gevent."""
        lock = self.redis.lock(f"{self.key}:lock", timeout=LOCK_TIMEOUT, sleep=0.005, blocking_timeout=LOCK_TIMEOUT)
        with self._reachable():
            if not lock.acquire():
                raise RegistryUnavailable(f"the kernel registry's lock was not free within {LOCK_TIMEOUT:g}s")
        try:
            yield
        finally:
            with contextlib.suppress(redis.exceptions.RedisError):
                lock.release()


class RedisSharedKernels(RedisRecords[KernelRecord]):
    """The kernel records of every instance, the session records beside them, and the instances'
    heartbeats, in the Redis database at ``url`` (``redis://[user:password@]host:port/db``,
    ``rediss://`` for TLS). ``instance`` names this instance (default: a new id per process
    start) and ``address`` is where the others reach it (``http://host:port``); ``pid_alive``
    tells whether a process of this instance still runs."""

    def __init__(
        self,
        url: str,
        *,
        pid_alive: Callable[[int], bool],
        instance: str | None = None,
        address: str = "",
        prefix: str = PREFIX,
        client: Any = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.url = url
        client = client or redis.Redis.from_url(url, socket_timeout=5.0, socket_connect_timeout=2.0)
        super().__init__(client, f"{prefix}:kernels", instance or uuid.uuid4().hex, self.describe)
        self.sessions: RedisRecords[SessionRecord] = RedisRecords(
            client, f"{prefix}:sessions", self.instance, self.describe
        )
        self.prefix = prefix
        self.address = address
        self.pid_alive = pid_alive
        self.clock = clock
        self._beat_at: float | None = None

    def describe(self) -> str:
        """The URL without its password."""
        scheme, _, rest = self.url.partition("://")
        return f"{scheme}://{rest.rpartition('@')[2]}"

    def _instance_key(self, instance: str) -> str:
        return f"{self.prefix}:instance:{instance}"

    def heartbeat(self, force: bool = False) -> bool:
        """Say this instance is alive (at most every HEARTBEAT seconds, unless ``force``; call it
        often). True when the registry had forgotten this instance (a Redis restarted without its
        data, or a pause longer than INSTANCE_TTL): its kernels' records must then be written again."""
        now = self.clock()
        if not force and self._beat_at is not None and now - self._beat_at < HEARTBEAT:
            return False
        ttl = int(INSTANCE_TTL * 1000)
        with self._reachable():
            pipe = self.redis.pipeline(transaction=False)
            pipe.set(self._instance_key(self.instance), self.address, px=ttl)
            # Each process asks for its own key: every worker learns that its records were lost.
            pipe.set(f"{self._instance_key(self.instance)}:{os.getpid()}", "1", px=ttl, get=True)
            previous = pipe.execute()[1]
        forgotten = self._beat_at is not None and previous is None
        self._beat_at = now
        return forgotten

    def address_of(self, instance: str) -> str | None:
        """Where instance ``instance`` is reached (``http://host:port``), or None once it is gone."""
        with self._reachable():
            raw = self.redis.get(self._instance_key(instance))
        return raw.decode() if raw is not None else None

    def peer_token(self) -> str:
        """The secret instances show each other on relayed calls (made by the first instance that
        asks; it lives in Redis, beside the kernels' keys, and is as secret)."""
        key = f"{self.prefix}:peer-token"
        with self._reachable():
            self.redis.set(key, uuid.uuid4().hex + uuid.uuid4().hex, nx=True)
            return cast(bytes, self.redis.get(key)).decode()

    def instance_of(self, record: KernelRecord) -> str | None:
        """The other instance that runs ``record``'s kernel, or None when it is this one."""
        instance = cast(dict[str, Any], record).get("instance")
        return instance if isinstance(instance, str) and instance != self.instance else None

    def alive(self, record: KernelRecord) -> bool:
        """Whether ``record``'s kernel (or its start) may still be running: its instance still beats,
        and, on this instance, its process (the starting worker while pending) still runs."""
        instance = cast(dict[str, Any], record).get("instance")
        if instance != self.instance:
            with self._reachable():
                return isinstance(instance, str) and bool(self.redis.exists(self._instance_key(instance)))
        pid = record.get("owner") if record.get("pending") else record.get("pid")
        return isinstance(pid, int) and self.pid_alive(pid)

    def prune(self) -> None:
        """Forget kernels whose process or instance is gone, and the sessions that named them."""
        self.heartbeat()
        gone = [r["id"] for r in self.all() if not self.alive(r)]
        for kernel_id in gone:
            self.remove(kernel_id)
        if gone:
            for session in self.sessions.all():
                if session.get("kernel_id") in gone:
                    self.sessions.remove(session["id"])
