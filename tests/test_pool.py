"""A pool of warm kernels that keeps its size through timeouts, hung cells and deaths."""

from __future__ import annotations

import os
import signal
import time

import gevent
import pytest

from fngw.kernels import (
    ExecutionTimeout,
    Kernel,
    KernelDied,
    KernelPool,
    PoolUnavailable,
    QueueFull,
    QueueTimeout,
    SeedCell,
)


def wait_until(predicate, timeout: float = 15.0) -> None:
    """Poll a condition the pool reaches in the background (bounded; not a fixed sleep)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        gevent.sleep(0.05)


@pytest.fixture
def make_pool(tmp_path):
    pools = []

    def make(size=1, max_queue=10, seed=("counter = 0",), grace=1.0) -> KernelPool:
        cells = [SeedCell(i, src) for i, src in enumerate(seed)]
        pool = KernelPool(
            "test",
            lambda: Kernel("python3", seed=cells, label="notebook 'test'", runtime_dir=tmp_path),
            size=size,
            max_queue=max_queue,
            interrupt_grace=grace,
        )
        pools.append(pool)
        pool.start()
        return pool

    yield make
    for pool in pools:
        pool.shutdown()
    assert list(tmp_path.glob("k-*")) == [], "kernel files left behind"


def test_idle_kernels_rotate_least_recently_released_first(make_pool):
    pool = make_pool(size=3)
    pool.execute("counter = 'written'", timeout=5)
    seen = [pool.execute("print(counter)", timeout=5).stdout.strip() for _ in range(3)]
    assert seen == ["0", "0", "written"]


def test_queue_is_bounded_and_waiting_is_timed(make_pool):
    pool = make_pool(size=1, max_queue=1)
    kernel = pool.acquire(1)
    waiter = gevent.spawn(pool.acquire, 0.3)
    wait_until(lambda: pool.stats().queued == 1)  # the waiter is in the queue
    with pytest.raises(QueueFull):
        pool.acquire(1)
    with pytest.raises(QueueTimeout):
        waiter.get()
    pool.release(kernel)
    assert pool.stats().rejected == 1 and pool.stats().queue_timeouts == 1


def test_waiter_gets_the_kernel_released_to_it(make_pool):
    pool = make_pool(size=1)
    kernel = pool.acquire(1)
    waiter = gevent.spawn(pool.acquire, 5)
    wait_until(lambda: pool.stats().queued == 1)  # the waiter is in the queue
    assert pool.stats().queued == 1
    pool.release(kernel)
    assert waiter.get(timeout=5) is kernel


def test_a_waiter_that_goes_away_leaves_the_queue(make_pool):
    pool = make_pool(size=1)
    kernel = pool.acquire(1)
    waiter = gevent.spawn(pool.acquire, 30)
    wait_until(lambda: pool.stats().queued == 1)  # the waiter is in the queue
    waiter.kill()  # what happens to a request greenlet when its client disconnects
    assert pool.stats().queued == 0
    pool.release(kernel)
    assert pool.acquire(1) is kernel


def test_timed_out_cell_is_interrupted_and_the_kernel_serves_again(make_pool):
    pool = make_pool(size=1)
    with pytest.raises(ExecutionTimeout):
        pool.execute("import time; time.sleep(30)", timeout=0.3)
    kernel = pool.acquire(10)
    assert kernel.restarts == 0  # the interrupt was enough
    pool.release(kernel)
    assert pool.execute("print('next')", timeout=5).stdout == "next\n"
    assert pool.stats().timeouts == 1


def test_cell_ignoring_sigint_is_restarted_and_reseeded(make_pool):
    pool = make_pool(size=1, grace=0.5)
    pool.execute("counter = 'changed'", timeout=5)
    hog = "import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    time.sleep(0.01)"
    with pytest.raises(ExecutionTimeout):
        pool.execute(hog, timeout=0.3)
    result = pool.execute("print(counter)", timeout=5, queue_timeout=30)
    assert result.stdout == "0\n"
    assert pool.stats().restarts == 1
    assert pool.stats().size == 1 and len(pool.kernels) == 1


def test_kernel_killed_by_its_cell_is_replaced(make_pool):
    pool = make_pool(size=2)
    with pytest.raises(KernelDied):
        pool.execute("import os; os._exit(1)", timeout=5)
    wait_until(lambda: pool.stats().idle == 2)
    assert all(k.alive for k in pool.kernels)
    assert pool.stats().deaths == 1 and pool.stats().restarts == 1


def test_idle_kernel_that_dies_is_replaced_and_never_handed_out(make_pool):
    pool = make_pool(size=2)
    victim = pool.kernels[0]
    old_pid = victim.pid
    os.kill(old_pid, signal.SIGKILL)
    wait_until(lambda: _exited(old_pid))  # dead, though the pool's monitor may not have looked yet
    for _ in range(6):  # meanwhile every execution lands on a live kernel
        assert pool.execute("print(1)", timeout=5, queue_timeout=30).stdout == "1\n"
    wait_until(lambda: victim.alive and victim.pid != old_pid and pool.stats().idle == 2)
    assert pool.stats().deaths == 1


def _exited(pid: int) -> bool:
    """The kernel (our child) has exited and can be reaped; checked without reaping it. /proc's
    state is not enough: a killed multi-threaded process shows 'Z' before it can be reaped."""
    try:
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:  # already reaped by the pool's monitor
        return True


def _failing_pool(runtime_dir) -> KernelPool:
    """A pool of one kernel whose seed cell 2 raises ZeroDivisionError."""
    make = lambda: Kernel("python3", seed=[SeedCell(2, "1/0")], label="notebook 'b'", runtime_dir=runtime_dir)  # noqa: E731
    return KernelPool("broken", make, size=1)


def test_failing_seed_makes_the_pool_unavailable_with_the_reason(tmp_path):
    pool = _failing_pool(tmp_path)
    try:
        with pytest.raises(PoolUnavailable, match="failed at cell 2: ZeroDivisionError"):
            pool.start()
        with pytest.raises(PoolUnavailable, match="ZeroDivisionError"):
            pool.acquire(5)
    finally:
        pool.shutdown()
    assert list(tmp_path.glob("k-*")) == []


def test_a_request_waiting_while_the_only_kernel_fails_its_seed_is_told_which_pool(tmp_path):
    pool = _failing_pool(tmp_path)
    try:
        pool.start(wait=False)
        with pytest.raises(PoolUnavailable, match="ZeroDivisionError") as raised:
            pool.acquire(30)  # queued while the kernel starts, then failed with it
        assert raised.value.pool == "broken"  # the 503 names it
    finally:
        pool.shutdown()


def test_stats_describe_the_pool(make_pool):
    pool = make_pool(size=2)
    kernel = pool.acquire(1)
    stats = pool.stats()
    assert (stats.size, stats.idle, stats.busy, stats.queued, stats.starting) == (2, 1, 1, 0, 0)
    pool.release(kernel)
