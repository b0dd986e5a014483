"""Soak: hold a real gunicorn (2 workers) at about 80 % of its measured capacity and watch it.

    .venv/bin/python bench/soak.py [--minutes 10] [--load 0.8] [--report FILE]

Serves bench/soak/fngw.yaml (fast, JSON, slow, failing, rich-output endpoints and the kernel API).
First measures capacity (closed loop, 15 s), then sends the request mix open-loop at ``--load`` of
it, plus a kernel API websocket session every 10 s (start a kernel, execute over its websocket,
delete it). Prints a line per minute: throughput, p50/p99, answers by status, gateway RSS and open
file descriptors, kernel processes. Fails (exit 1) when a request goes unanswered, when a status
other than the intended ones appears, or when RSS or file descriptors keep growing.

``bench/chaos.py`` runs the same load with faults injected on a schedule.
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import contextlib  # noqa: E402
import http.client  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402

import gevent  # noqa: E402
import gevent.pool  # noqa: E402
from common import shell_message  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
MANIFEST = ROOT / "bench" / "soak" / "fngw.yaml"
ANSWER_TIMEOUT = 60.0  # a request without an answer by then is unanswered

# (weight, method, path, body, intended statuses)
MIX = [
    (40, "GET", "/hello/soak", None, {200}),
    (25, "POST", "/echo", {"values": [1, 2, 3], "name": "soak"}, {200}),
    (10, "GET", "/slow?ms=100", None, {200}),
    (10, "GET", "/fail", None, {500}),
    (15, "GET", "/png", None, {200}),
]


@dataclass
class Minute:
    latencies: list[float] = field(default_factory=list)
    statuses: dict[str, int] = field(default_factory=dict)
    unanswered: int = 0
    unexpected: int = 0
    ws_sessions: int = 0
    ws_failures: int = 0


class Gateway:
    """gunicorn with fngw's production config and 2 workers, logging to a file."""

    def __init__(self, workers: int = 2):
        self.port = _free_port()
        self.log = tempfile.NamedTemporaryFile(prefix="fngw-soak-", suffix=".log", delete=False)  # noqa: SIM115
        env = {**os.environ, "FNGW_MANIFEST": str(MANIFEST), "FNGW_LOG_FORMAT": "json"}
        self.proc = subprocess.Popen(
            [
                str(Path(sys.executable).with_name("gunicorn")),
                "fngw.wsgi",
                "--bind",
                f"127.0.0.1:{self.port}",
                "--workers",
                str(workers),
            ],
            cwd=ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.wait_full()

    def get(self, path: str, timeout: float = 5.0) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request("GET", path)
            resp = conn.getresponse()
            return resp.status, resp.read()
        finally:
            conn.close()

    def pool_kernels_up(self) -> tuple[float, float]:
        """(kernels idle or busy, kernels the pools should have), from the metrics (all workers)."""
        _, body = self.get("/_fngw/metrics")
        up = size = 0.0
        for line in body.decode().splitlines():
            if line.startswith("fngw_pool_kernels{") and ('state="idle"' in line or 'state="busy"' in line):
                up += float(line.rsplit(" ", 1)[1])
            elif line.startswith("fngw_pool_size{"):
                size += float(line.rsplit(" ", 1)[1])
        return up, size

    def wait_full(self, timeout: float = 120.0) -> float:
        """Until every pool of every worker has all its kernels up; returns how long it took."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if self.proc.poll() is not None:
                raise SystemExit(f"gateway exited with {self.proc.returncode}; see {self.log.name}")
            try:
                up, size = self.pool_kernels_up()
                if size > 0 and up >= size:
                    return time.monotonic() - started
            except OSError:
                pass
            gevent.sleep(0.1)
        raise SystemExit(f"pools did not fill within {timeout:g}s; see {self.log.name}")

    def processes(self) -> list[int]:
        return [self.proc.pid, *_descendants(self.proc.pid)]

    def workers(self) -> list[int]:
        return _children(self.proc.pid)

    def kernels(self) -> list[int]:
        return [pid for pid in _descendants(self.proc.pid) if "ipykernel" in _cmdline(pid)]

    def gateway_rss_mb(self) -> float:
        return sum(_rss_mb(pid) for pid in [self.proc.pid, *self.workers()])

    def gateway_fds(self) -> int:
        total = 0
        for pid in [self.proc.pid, *self.workers()]:
            with contextlib.suppress(OSError):
                total += len(os.listdir(f"/proc/{pid}/fd"))
        return total

    def stop(self) -> list[int]:
        """SIGTERM to the master; returns the PIDs of gateway processes still running after it exits."""
        everything = self.processes()
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and any(_running(p) for p in everything):
            gevent.sleep(0.1)
        left = [p for p in everything if _running(p)]
        for pid in left:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        return left


class Load:
    """Open-loop request mix at a fixed rate, results by minute."""

    def __init__(self, gateway: Gateway, rate: float):
        self.gateway = gateway
        self.rate = rate
        self.minutes: list[Minute] = [Minute()]
        self.started = time.monotonic()
        self.in_flight = gevent.pool.Group()
        self.running = True
        self.elapsed = 0.0
        self.failures: list[tuple[float, str]] = []  # (monotonic time, what happened) of unanswered requests
        weights = [w for w, *_ in MIX]
        self._choices = random.Random(7).choices(range(len(MIX)), weights, k=1_000_000)
        self._next = 0

    def minute(self) -> Minute:
        index = int((time.monotonic() - self.started) // 60)
        while len(self.minutes) <= index:
            self.minutes.append(Minute())
        return self.minutes[index]

    def one(self, kind: int) -> None:
        _, method, path, body, intended = MIX[kind]
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"} if body is not None else {}
        t0 = time.perf_counter()
        conn = http.client.HTTPConnection("127.0.0.1", self.gateway.port, timeout=ANSWER_TIMEOUT)
        try:
            conn.request(method, path, body=data, headers=headers)
            resp = conn.getresponse()
            resp.read()
            status = str(resp.status)
        except (OSError, http.client.HTTPException) as exc:
            status = f"no answer ({type(exc).__name__})"
        finally:
            conn.close()
        m = self.minute()
        m.statuses[status] = m.statuses.get(status, 0) + 1
        if not status.isdigit():
            m.unanswered += 1
            self.failures.append((time.monotonic(), status))
        elif int(status) not in intended:
            m.unexpected += 1
        else:
            m.latencies.append(time.perf_counter() - t0)

    def run(self, seconds: float) -> None:
        interval = 1.0 / self.rate
        end = self.started + seconds
        due = time.monotonic()
        while self.running and time.monotonic() < end:
            kind = self._choices[self._next % len(self._choices)]
            self._next += 1
            self.in_flight.spawn(self.one, kind)
            due += interval
            delay = due - time.monotonic()
            if delay > 0:
                gevent.sleep(delay)
        self.elapsed = time.monotonic() - self.started
        self.in_flight.join(timeout=ANSWER_TIMEOUT + 5)

    def websocket_sessions(self, every: float, seconds: float) -> None:
        end = self.started + seconds
        while self.running and time.monotonic() < end:
            ok = kernel_api_session(self.gateway.port)
            m = self.minute()
            m.ws_sessions += 1
            if not ok:
                m.ws_failures += 1
            gevent.sleep(every)


def kernel_api_session(port: int) -> bool:
    """Start a kernel, execute over its websocket (legacy framing), delete it. True when all worked."""
    from websockets.sync.client import connect

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request("POST", "/api/kernels", body=b"{}", headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        model = json.loads(resp.read() or b"{}")
        if resp.status != 201:
            return False
        kernel_id = model["id"]
        ok = True
        try:
            url = f"ws://127.0.0.1:{port}/api/kernels/{kernel_id}/channels?session_id=soak"
            with connect(url, open_timeout=30) as ws:
                msg_id = uuid.uuid4().hex
                code = {"code": "print(6 * 7)", "silent": False, "store_history": False,
                        "user_expressions": {}, "allow_stdin": False}  # fmt: skip
                ws.send(shell_message("execute_request", code, msg_id, session="soak"))
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline:
                    reply = json.loads(ws.recv(timeout=30))
                    if reply.get("channel") == "shell" and reply["parent_header"].get("msg_id") == msg_id:
                        ok = reply["content"].get("status") == "ok"
                        break
                else:
                    ok = False
        except Exception:  # noqa: BLE001 - any failure of the session is counted, not raised
            ok = False
        conn.request("DELETE", f"/api/kernels/{kernel_id}")
        return conn.getresponse().status == 204 and ok
    except (OSError, ValueError, KeyError, http.client.HTTPException):
        return False
    finally:
        conn.close()


def measure_capacity(gateway: Gateway, seconds: float = 15.0, clients: int = 16) -> float:
    """Requests per second of the mix, closed loop with ``clients`` concurrent clients."""
    load = Load(gateway, rate=1.0)
    done = 0
    end = time.monotonic() + seconds

    def client() -> None:
        nonlocal done
        i = random.randrange(1000)
        while time.monotonic() < end:
            load.one(load._choices[i % len(load._choices)])
            i += 1
            done += 1

    started = time.monotonic()
    gevent.joinall([gevent.spawn(client) for _ in range(clients)])
    return done / (time.monotonic() - started)


def sample_resources(gateway: Gateway, samples: list[dict], load: Load, stop_event) -> None:
    while not stop_event.is_set():
        samples.append(
            {
                "t": time.monotonic() - load.started,
                "rss_mb": gateway.gateway_rss_mb(),
                "fds": gateway.gateway_fds(),
                "kernels": len(gateway.kernels()),
            }
        )
        stop_event.wait(10)


def report(
    load: Load, samples: list[dict], extra_allowed: frozenset[int] = frozenset(), explained_unanswered: int = 0
) -> tuple[list[str], bool]:
    """Lines per minute and whether the run passed. ``extra_allowed``: statuses accepted besides each
    endpoint's intended ones (chaos: the documented 502/503/504); ``explained_unanswered``: requests
    that could not be answered because the process holding them was killed."""
    lines = ["minute  req/s   p50 ms  p99 ms  statuses" + " " * 34 + "rss MB  fds  kernels  ws ok/all"]
    passed = True
    for i, m in enumerate(load.minutes):
        in_minute = [s for s in samples if i * 60 <= s["t"] < (i + 1) * 60] or samples[-1:]
        last = in_minute[-1] if in_minute else {"rss_mb": 0, "fds": 0, "kernels": 0}
        lat = sorted(m.latencies)
        count = sum(m.statuses.values())
        span = min(60.0, max(1.0, load.elapsed - i * 60))  # the last minute may be partial
        p50 = lat[len(lat) // 2] * 1000 if lat else 0.0
        p99 = lat[int(0.99 * (len(lat) - 1))] * 1000 if lat else 0.0
        statuses = ", ".join(f"{k}: {v}" for k, v in sorted(m.statuses.items()))
        lines.append(
            f"{i + 1:>6}  {count / span:>5.1f}  {p50:>7.1f} {p99:>7.1f}  {statuses:<40}  {last['rss_mb']:>6.0f} "
            f"{last['fds']:>4} {last['kernels']:>8}  {m.ws_sessions - m.ws_failures}/{m.ws_sessions}"
        )
        unexpected = m.unexpected - sum(v for k, v in m.statuses.items() if k.isdigit() and int(k) in extra_allowed)
        if unexpected > 0 or (m.ws_failures and not extra_allowed):
            passed = False
    unanswered = sum(m.unanswered for m in load.minutes)
    lines.append(f"unanswered requests: {unanswered} ({explained_unanswered} in flight on a SIGKILLed worker)")
    if unanswered > explained_unanswered:
        passed = False
    growth = resource_growth(samples)
    lines.append(f"gateway RSS {growth['rss']}; file descriptors {growth['fds']}")
    if growth["failed"]:
        passed = False
    return lines, passed


def resource_growth(samples: list[dict]) -> dict:
    """Compare the second minute (warm) with the last: growing in each of the last three samples and
    by more than 10 % (RSS, at least 10 MB) or 20 descriptors counts as growth."""
    warm = [s for s in samples if s["t"] >= 60] or samples
    if len(warm) < 4:
        return {"rss": "not enough samples", "fds": "not enough samples", "failed": False}
    first, tail = warm[0], warm[-4:]
    rss_rising = all(b["rss_mb"] > a["rss_mb"] for a, b in zip(tail, tail[1:], strict=False))
    fds_rising = all(b["fds"] > a["fds"] for a, b in zip(tail, tail[1:], strict=False))
    rss_grew = tail[-1]["rss_mb"] - first["rss_mb"]
    fds_grew = tail[-1]["fds"] - first["fds"]
    rss_failed = rss_rising and rss_grew > max(10.0, 0.1 * first["rss_mb"])
    fds_failed = fds_rising and fds_grew > 20
    return {
        "rss": f"{first['rss_mb']:.0f} -> {tail[-1]['rss_mb']:.0f} MB" + (" (GROWING)" if rss_failed else ""),
        "fds": f"{first['fds']} -> {tail[-1]['fds']}" + (" (GROWING)" if fds_failed else ""),
        "failed": rss_failed or fds_failed,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--load", type=float, default=0.8, help="fraction of measured capacity")
    parser.add_argument("--report", type=Path, default=None, help="also write the report here")
    args = parser.parse_args(argv)
    return soak(args.minutes, args.load, args.report)


def soak(minutes: float, fraction: float, report_path: Path | None, chaos=None) -> int:
    import gevent.event

    gateway = Gateway()
    leftovers: list[int] = []
    try:
        capacity = measure_capacity(gateway)
        rate = capacity * fraction
        header = [
            f"fngw {'chaos' if chaos else 'soak'}: {minutes:g} min, 2 workers, {MANIFEST.relative_to(ROOT)}",
            f"capacity (closed loop, 16 clients, 15 s): {capacity:.1f} req/s; sending {rate:.1f} req/s "
            f"({fraction:.0%}) plus a kernel API websocket session every 10 s",
        ]
        print("\n".join(header), flush=True)
        gateway.wait_full()
        load = Load(gateway, rate)
        samples: list[dict] = []
        stop_sampling = gevent.event.Event()
        seconds = minutes * 60
        tasks = [
            gevent.spawn(sample_resources, gateway, samples, load, stop_sampling),
            gevent.spawn(load.websocket_sessions, 10.0, seconds),
        ]
        faults = gevent.spawn(chaos, gateway, load, seconds) if chaos else None
        load.run(seconds)
        stop_sampling.set()
        gevent.joinall(tasks, timeout=90)
        outcome = faults.get() if faults is not None else {"lines": [], "explained_unanswered": 0, "passed": True}
        fault_lines = outcome["lines"]
        lines, passed = report(
            load,
            samples,
            frozenset({502, 503, 504}) if chaos else frozenset(),
            outcome["explained_unanswered"],
        )
        passed = passed and outcome["passed"]
    finally:
        leftovers = gateway.stop()
    lines.append(f"processes left after SIGTERM: {leftovers or 'none'}")
    if leftovers:
        passed = False
    lines += fault_lines
    lines.append("PASSED" if passed else "FAILED")
    text = "\n".join(header + lines)
    print("\n".join(lines))
    if report_path is not None:
        report_path.write_text(text + "\n")
    return 0 if passed else 1


# --- /proc helpers ---------------------------------------------------------------------------------


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        found.append(int(entry))
            except OSError:
                pass
    return found


def _descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        for child in _children(todo.pop()):
            found.append(child)
            todo.append(child)
    return found


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _rss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


if __name__ == "__main__":
    raise SystemExit(main())
