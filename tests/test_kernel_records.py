"""The kernel API's shared records: the same contract in an instance's folder and in Redis, and,
in Redis, several instances: each sees the others' kernels, and a lost instance's are forgotten."""

from __future__ import annotations

import os
import threading
import uuid
from urllib.parse import unquote, urlsplit

import pytest
import redis

from fngw.kernel_api.errors import RegistryUnavailable
from fngw.kernel_api.redis_records import RedisSharedKernels
from fngw.kernel_api.shared import SharedKernels
from fngw.kernels import pid_alive
from fngw.manifest.environment import expand_url

GONE = 999_999_999  # no such process


def redis_records(url: str, prefix: str, instance: str | None = None) -> RedisSharedKernels:
    return RedisSharedKernels(url, pid_alive=pid_alive, prefix=prefix, instance=instance)


@pytest.fixture(params=["folder", "redis"])
def records(request, tmp_path):
    if request.param == "folder":
        return SharedKernels(tmp_path / "shared")
    server = request.getfixturevalue("redis_server")
    return redis_records(server.url, f"test:{uuid.uuid4().hex}")


def kernel(kernel_id: str, pid: int = os.getpid()) -> dict:
    return {"id": kernel_id, "name": "python3", "pid": pid, "owner": os.getpid(), "connection": {"key": "k"}}


def test_records_are_written_read_listed_and_removed(records):
    records.write(kernel("a"))
    records.write(kernel("b"))
    assert records.read("a")["name"] == "python3"
    assert sorted(records.ids()) == ["a", "b"]
    assert sorted(r["id"] for r in records.all()) == ["a", "b"]
    records.write({**kernel("a"), "name": "other"})  # replaced whole
    assert records.read("a")["name"] == "other"
    records.remove("a")
    records.remove("a")  # twice: no error
    assert records.read("a") is None and records.ids() == ["b"]
    assert records.read("../etc/passwd") is None


def test_update_never_brings_back_a_removed_record(records):
    # An owner publishing its kernel's state must not revive a kernel another process deleted.
    records.write(kernel("a"))
    assert records.update({**kernel("a"), "execution_state": "busy"}) is True
    assert records.read("a")["execution_state"] == "busy"
    records.remove("a")
    assert records.update({**kernel("a"), "execution_state": "idle"}) is False
    assert records.read("a") is None and records.ids() == []


def test_prune_forgets_kernels_whose_process_is_gone_and_keeps_pending_starts(records):
    records.write(kernel("alive"))
    records.write(kernel("dead", pid=GONE))
    records.write({"id": "starting", "pending": True, "owner": os.getpid()})
    records.write({"id": "orphan", "pending": True, "owner": GONE})
    records.prune()
    assert sorted(records.ids()) == ["alive", "starting"]


def test_sessions_live_beside_the_kernels(records):
    session = {"id": "s", "path": "a.ipynb", "name": "", "type": "notebook", "kernel_id": "a", "kernel_name": "python3"}
    records.sessions.write(session)
    assert records.sessions.read("s")["path"] == "a.ipynb"
    assert records.ids() == []  # not a kernel
    records.sessions.remove("s")
    assert records.sessions.all() == []


def test_the_lock_is_exclusive(records):
    inside = []
    overlaps = []

    def hold(n: int) -> None:
        for _ in range(n):
            with records.locked():
                inside.append(1)
                overlaps.append(len(inside))
                inside.pop()

    threads = [threading.Thread(target=hold, args=(30,)) for _ in range(3)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert overlaps == [1] * 90


def test_redis_every_instance_sees_every_kernel_and_a_lost_instances_are_forgotten(redis_server):
    prefix = f"test:{uuid.uuid4().hex}"
    first, second = redis_records(redis_server.url, prefix, "one"), redis_records(redis_server.url, prefix, "two")
    first.heartbeat()
    second.heartbeat()
    first.write(kernel("k1", pid=GONE))  # a pid on the first instance's host, meaningless here
    second.sessions.write(
        {"id": "s1", "path": "n.ipynb", "name": "", "type": "notebook", "kernel_id": "k1", "kernel_name": "python3"}
    )
    second.prune()  # another instance's kernel: alive while that instance beats
    assert second.read("k1")["instance"] == "one"
    assert second.sessions.read("s1") is not None
    first.redis.delete(first._instance_key("one"))  # its heartbeat expired: the instance is gone
    second.prune()
    assert second.ids() == [] and second.sessions.read("s1") is None


def test_redis_unreachable_is_a_clear_error():
    records = redis_records("redis://127.0.0.1:1/0", "test:down")
    with pytest.raises(RegistryUnavailable, match=r"Redis at redis://127.0.0.1:1/0\) is unreachable"):
        records.ids()
    with pytest.raises(RegistryUnavailable), records.locked():
        pass


def test_redis_describe_hides_the_password():
    records = RedisSharedKernels("redis://user:s3cret@host:6379/2", pid_alive=pid_alive)
    assert records.describe() == "redis://host:6379/2"


def test_redis_heartbeat_tells_a_process_its_records_were_lost(redis_server):
    now = [0.0]
    records = RedisSharedKernels(
        redis_server.url, pid_alive=pid_alive, prefix=f"test:{uuid.uuid4().hex}", clock=lambda: now[0]
    )
    assert records.heartbeat() is False  # the first: nothing was known before
    now[0] += 60
    assert records.heartbeat() is False  # still known
    for key in records.redis.scan_iter(f"{records.prefix}:*"):  # Redis restarted without its data
        records.redis.delete(key)
    now[0] += 60
    assert records.heartbeat() is True
    assert records.address_of(records.instance) == ""


def test_peers_trust_the_deployments_secret_and_follow_a_new_one():
    from fngw.kernel_api.relay import HttpPeers

    secrets = iter(["first", "second"])
    current = ["first"]

    def registry_secret() -> str:
        current[0] = next(secrets, current[0])
        return current[0]

    peers = HttpPeers(registry_secret)
    assert peers.trusts("first")
    assert not peers.trusts("forged")
    assert peers.trusts("second")  # the registry made a new one (it lost its data): read again
    assert peers.token() == "second"

    def unreachable() -> str:
        raise RegistryUnavailable("down")

    assert not HttpPeers(unreachable).trusts("anything")


def test_service_urls_take_their_password_from_the_environment_percent_encoded():
    from fngw.manifest.environment import UnsetVariable

    url = "redis://:${REDIS_PASSWORD}@host:6379/0"
    assert expand_url(url, {"REDIS_PASSWORD": "s3cret"}) == "redis://:s3cret@host:6379/0"
    # Characters that mean something in a URL stay inside the password.
    expanded = expand_url(url, {"REDIS_PASSWORD": "a/b#c?d@e:f"})
    assert urlsplit(expanded).hostname == "host" and urlsplit(expanded).port == 6379
    assert unquote(urlsplit(expanded).password) == "a/b#c?d@e:f"
    with pytest.raises(UnsetVariable, match=r"^\$\{REDIS_PASSWORD\} is not set$"):
        expand_url(url, {})


def test_redis_with_a_password_reaches_it_and_a_wrong_one_is_named_so(redis_server):
    password = "p/w#1?x@y"
    client = redis.Redis.from_url(redis_server.url)
    client.config_set("requirepass", password)
    try:
        url = redis_server.url.replace("redis://", "redis://:${REDIS_PASSWORD}@")
        good = redis_records(expand_url(url, {"REDIS_PASSWORD": password}), f"test:{uuid.uuid4().hex}")
        good.write(kernel("a"))
        assert good.read("a")["id"] == "a"
        wrong = redis_records(expand_url(url, {"REDIS_PASSWORD": "nope"}), f"test:{uuid.uuid4().hex}")
        with pytest.raises(RegistryUnavailable, match="refused this gateway's credentials") as refused:
            wrong.ids()
        assert "nope" not in str(refused.value)
    finally:
        authed = redis.Redis.from_url(redis_server.url, password=password)
        authed.config_set("requirepass", "")
