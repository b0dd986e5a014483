"""Chaos: the soak's load while faults are injected on a schedule.

    .venv/bin/python bench/chaos.py [--minutes 10] [--load 0.8] [--every 20] [--report FILE]

Every ``--every`` seconds, in turn: SIGKILL a pool kernel; make a cell hang past its timeout
(`GET /hang`, 2 s); SIGKILL a gunicorn worker; reload with SIGHUP. After each fault it measures how
long until every pool of every worker is back to full size (from `/_fngw/metrics`). Passes when every
request got an answer (2xx, the intended 500s, or the documented 502/503/504; requests in flight on
the worker that was SIGKILLed cannot be answered and are counted apart), pools were full again
within 5 s of each fault, and no process the gateway started is left after SIGTERM.
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import http.client  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402
import signal  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import gevent  # noqa: E402
import soak  # noqa: E402

RECOVERY_LIMIT = 5.0  # seconds the pools may stay below full size after a fault
WORKER_KILL_WINDOW = 2.0  # unanswered requests this soon after a worker SIGKILL were in flight on it


def pool_kernels(gateway: soak.Gateway) -> list[int]:
    # Pool kernels run in the notebook's folder; the kernel API's (short sessions) in the gateway's.
    return [pid for pid in gateway.kernels() if _cwd(pid) == str(soak.MANIFEST.parent)]


def kill_kernel(gateway: soak.Gateway) -> tuple[str, list[int]]:
    victim = random.choice(pool_kernels(gateway))
    os.kill(victim, signal.SIGKILL)
    return f"SIGKILL kernel {victim}", [victim]


def _cwd(pid: int) -> str:
    try:
        return os.readlink(f"/proc/{pid}/cwd")
    except OSError:
        return ""


def hang_cell(gateway: soak.Gateway) -> tuple[str, list[int]]:
    return _hang(gateway), []


def _hang(gateway: soak.Gateway) -> str:
    conn = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=30)
    try:
        started = time.monotonic()
        conn.request("GET", "/hang")
        resp = conn.getresponse()
        resp.read()
        return f"GET /hang answered {resp.status} after {time.monotonic() - started:.1f} s" + (
            "" if resp.status == 504 else " (EXPECTED 504)"
        )
    except OSError as exc:
        return f"GET /hang got no answer: {exc} (EXPECTED 504)"
    finally:
        conn.close()


def kill_worker(gateway: soak.Gateway, kills: list[float]) -> tuple[str, list[int]]:
    victim = random.choice(gateway.workers())
    kills.append(time.monotonic())
    os.kill(victim, signal.SIGKILL)
    return f"SIGKILL worker {victim}", [victim]


def reload(gateway: soak.Gateway) -> tuple[str, list[int]]:
    old = gateway.workers()
    gateway.proc.send_signal(signal.SIGHUP)
    return "SIGHUP (reload)", old


def wait_recovered(
    gateway: soak.Gateway, victims: list[int], kernels: int, workers: int, starts_before: float, new_starts: int,
    timeout: float = 60.0,
) -> float:  # fmt: skip
    """Until the fault is repaired: the killed or replaced processes are gone, as many workers and
    pool kernel processes run as before, ``new_starts`` more kernel starts have completed (the
    metrics count a start once the kernel is up and seeded), every pool reports all its kernels up,
    and the /hang pool's kernel is idle again. Returns for how long, meanwhile, the pools had fewer
    kernels up than their size. Each worker refreshes its pool figures every second, so both
    measures may be up to a second longer than the truth, never shorter."""
    started = last = time.monotonic()
    below_full = 0.0
    while time.monotonic() - started < timeout:
        up, size = gateway.pool_kernels_up()
        now = time.monotonic()
        if up < size:
            below_full += now - last
        last = now
        processes_back = (
            not any(soak._running(pid) for pid in victims)
            and len(gateway.workers()) == workers
            and len(pool_kernels(gateway)) == kernels
        )
        if processes_back and kernel_starts(gateway) >= starts_before + new_starts and _pools_idle(gateway):
            return below_full
        gevent.sleep(0.05)
    raise SystemExit(f"not recovered within {timeout:g}s")


def kernel_starts(gateway: soak.Gateway) -> float:
    _, body = gateway.get("/_fngw/metrics")
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in body.decode().splitlines()
        if line.startswith("fngw_kernel_starts_total{")
    )


def _pools_idle(gateway: soak.Gateway) -> bool:
    """Every pool has all its kernels up, and the /hang pool's kernel is idle again."""
    up, size = gateway.pool_kernels_up()
    if up < size:
        return False
    _, body = gateway.get("/_fngw/metrics")
    busy_hang = [
        float(line.rsplit(" ", 1)[1])
        for line in body.decode().splitlines()
        if line.startswith("fngw_pool_kernels{") and "GET /hang" in line and 'state="busy"' in line
    ]
    return not any(busy_hang)


def schedule(every: float):
    def run(gateway: soak.Gateway, load: soak.Load, seconds: float) -> dict:
        kills: list[float] = []
        workers = len(gateway.workers())
        kernels_per_worker = len(pool_kernels(gateway)) // workers
        # (fault, kernel starts that repair it)
        faults = [
            (lambda: kill_kernel(gateway), 1),
            (lambda: hang_cell(gateway), 0),  # interrupted, not restarted
            (lambda: kill_worker(gateway, kills), kernels_per_worker),
            (lambda: reload(gateway), kernels_per_worker * workers),
        ]
        lines = [
            "fault log (seconds into the run; the fault; time until it was repaired: processes replaced, kernels"
            " started, pools full; and for how long meanwhile the pools had fewer kernels up than their size):"
        ]
        passed = True
        end = load.started + seconds - every  # leave the last interval fault-free
        i = 0
        gevent.sleep(every)
        kernels = len(pool_kernels(gateway))
        while time.monotonic() < end:
            at = time.monotonic() - load.started
            fault, new_starts = faults[i % len(faults)]
            starts_before = kernel_starts(gateway)
            hit = time.monotonic()
            what, victims = fault()
            try:
                below_full = wait_recovered(gateway, victims, kernels, workers, starts_before, new_starts)
                repaired = time.monotonic() - hit
                slow = below_full > RECOVERY_LIMIT
                lines.append(
                    f"  {at:6.1f} s  {what}: repaired in {repaired:.2f} s, pools below full size for "
                    f"{below_full:.2f} s" + (" (SLOW)" if slow else "")
                )
            except SystemExit as exc:
                slow = True
                lines.append(f"  {at:6.1f} s  {what}: NOT full again: {exc}")
            if slow or "EXPECTED" in what:
                passed = False
            i += 1
            gevent.sleep(max(0.0, every - (time.monotonic() - hit)))
        explained = sum(1 for t, _ in load.failures if any(0 <= t - k <= WORKER_KILL_WINDOW for k in kills))
        reasons: dict[str, int] = {}
        for _, what in load.failures:
            reasons[what] = reasons.get(what, 0) + 1
        lines.append(f"unanswered by kind: {reasons or 'none'}")
        return {"lines": lines, "explained_unanswered": explained, "passed": passed}

    return run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--load", type=float, default=0.8)
    parser.add_argument("--every", type=float, default=20.0, help="seconds between faults")
    parser.add_argument("--report", type=Path, default=None)
    args = parser.parse_args(argv)
    return soak.soak(args.minutes, args.load, args.report, chaos=schedule(args.every))


if __name__ == "__main__":
    raise SystemExit(main())
