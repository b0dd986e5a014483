"""A small closed-loop HTTP load generator: N keep-alive clients for S seconds against 127.0.0.1.

    python bench/loadgen.py PORT GET|POST CLIENTS SECONDS [MAX_REQUESTS]   -> JSON summary on stdout

GET requests /hello; POST sends a small JSON body to /echo. Bounded in time and count by design.
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import http.client  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import gevent  # noqa: E402

MAX_REQUESTS = 200_000


def main() -> None:
    port, method, clients, seconds = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    limit = int(sys.argv[5]) if len(sys.argv) > 5 else MAX_REQUESTS
    latencies: list[float] = []  # of 200 answers
    refused: list[float] = []  # of 503 answers
    statuses: dict[int, int] = {}
    errors = 0
    body = json.dumps({"name": "fngw", "values": [1, 2, 3]}).encode()
    end = time.monotonic() + seconds

    def client() -> None:
        nonlocal errors
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        while time.monotonic() < end and len(latencies) + len(refused) < limit:
            t0 = time.perf_counter()
            try:
                if method == "GET":
                    conn.request("GET", "/hello")
                else:
                    conn.request("POST", "/echo", body=body, headers={"Content-Type": "application/json"})
                resp = conn.getresponse()
                resp.read()
            except OSError:
                errors += 1
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                continue
            (latencies if resp.status == 200 else refused).append(time.perf_counter() - t0)
            statuses[resp.status] = statuses.get(resp.status, 0) + 1
        conn.close()

    started = time.monotonic()
    gevent.joinall([gevent.spawn(client) for _ in range(clients)])
    elapsed = time.monotonic() - started
    latencies.sort()
    refused.sort()

    def pct(values: list[float], q: float) -> float:
        return values[int(q * (len(values) - 1))] * 1000 if values else 0.0

    errors += sum(n for s, n in statuses.items() if s not in (200, 503))
    print(
        json.dumps(
            {
                "rps": len(latencies) / elapsed,
                "answered": len(latencies) + len(refused),
                "p50_ms": pct(latencies, 0.5),
                "p99_ms": pct(latencies, 0.99),
                "refused": len(refused),
                "refused_p99_ms": pct(refused, 0.99),
                "errors": errors,
                "statuses": statuses,
            }
        )
    )


if __name__ == "__main__":
    main()
