#!/usr/bin/env python3
"""Reliability under load: --clients concurrent keep-alive clients for --seconds seconds against
one `edm-monitor serve` (fresh SQLite file, or a private PostgreSQL with --database postgres),
mixing reads (health, tasks, alerts, queue status, a range query), ingest (100-point batches)
and alert acknowledgements.

Reported: requests by class, 5xx count (must be 0), p50/p99 latency by class, and ingest
accounting: points acknowledged (201) against points stored (counted in the database
afterwards; must be equal: no lost ingest).

Bounded: every client stops at the deadline; each request has a 30 s timeout.
Python threads issue the load, so the client side (GIL) may limit the rate: the figure is a
correctness check under concurrency, not a throughput benchmark (see http_rate.py for that).

  python3 scripts/bench/load.py --clients 200 --seconds 60
"""
from __future__ import annotations

import argparse
import http.client
import json
import random
import subprocess
import threading
import time

from benchlib import API, Stack, log, wait_for, write_result

READS = ["/api/monitoring/health", "/api/tasks?per_page=20", "/api/monitoring/alerts?per_page=20", "/api/monitoring/queue-status",
         "/api/monitoring/performance-metrics?name=edm_load_m0_percent&step=60", "/api/monitoring/system-health"]


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--database", choices=["sqlite", "postgres"], default="sqlite")
    args = parser.parse_args()

    with Stack("load") as stack:
        sqlite_path = stack.workdir / "edm.sqlite"
        url = stack.start_postgres().url if args.database == "postgres" else f"sqlite://{sqlite_path}"
        _, port = stack.serve(url)
        api = API(port)
        # Alerts to acknowledge: absence rules on metrics nobody sends fire at the first evaluation.
        for i in range(5):
            api.ok("POST", "/api/monitoring/alert-rules", {"name": f"absent-{i}", "metric_name": f"edm_never_sent_{i}_total",
                                                           "condition_type": "absence", "time_window_minutes": 1, "severity": "warning"})
        alerts = wait_for(lambda: [a["id"] for a in api.ok("GET", "/api/monitoring/alerts?per_page=50")["data"]] or None,
                          timeout=90, interval=2, what="firing alerts to acknowledge")
        log(f"{len(alerts)} alerts firing; starting {args.clients} clients for {args.seconds} s")

        lock = threading.Lock()
        latencies: dict[str, list[float]] = {"read": [], "ingest": [], "ack": []}
        statuses: dict[str, dict[int, int]] = {"read": {}, "ingest": {}, "ack": {}}
        errors: list[str] = []
        failures_5xx: dict[str, int] = {}
        acknowledged_points = [0]
        deadline = time.monotonic() + args.seconds

        def client(n: int) -> None:
            rng = random.Random(n)
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            seq = 0
            while time.monotonic() < deadline:
                roll = rng.random()
                headers = {"Content-Type": "application/json"}
                if api.token:
                    headers["Authorization"] = f"Bearer {api.token}"
                if roll < 0.7:
                    kind, method, path, body = "read", "GET", rng.choice(READS), None
                elif roll < 0.9:
                    now = time.time()
                    points = [{"name": f"edm_load_m{i % 10}_percent", "value": rng.random() * 100, "tags": {"client": str(n), "seq": str(seq)},
                               "timestamp": now - i} for i in range(100)]
                    seq += 1
                    kind, method, path, body = "ingest", "POST", "/api/monitoring/performance-metrics", json.dumps({"points": points})
                else:
                    kind, method, path, body = "ack", "POST", f"/api/monitoring/alerts/{rng.choice(alerts)}/acknowledge", json.dumps({"by": f"client-{n}"})
                start = time.monotonic()
                try:
                    conn.request(method, path, body=body, headers=headers)
                    resp = conn.getresponse()
                    resp.read()
                    status = resp.status
                except Exception as err:  # a dropped connection counts as an error, then reconnect
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                    with lock:
                        errors.append(f"{kind} {path}: {type(err).__name__}: {err}")
                    continue
                elapsed = time.monotonic() - start
                with lock:
                    if status >= 500:
                        failures_5xx[f"{method} {path.split('?')[0]} {status}"] = failures_5xx.get(f"{method} {path.split('?')[0]} {status}", 0) + 1
                    latencies[kind].append(elapsed)
                    statuses[kind][status] = statuses[kind].get(status, 0) + 1
                    if kind == "ingest" and status == 201:
                        acknowledged_points[0] += 100
            conn.close()

        threads = [threading.Thread(target=client, args=(n,)) for n in range(args.clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=args.seconds + 120)
        count_sql = "SELECT COUNT(*) FROM system_performance_metrics WHERE metric_name LIKE 'edm_load_%'"
        if args.database == "sqlite":
            stored = int(subprocess.run(["sqlite3", "-cmd", ".timeout 30000", str(sqlite_path), count_sql], capture_output=True, text=True, check=True).stdout)
        else:
            stored = int(stack.postgres.psql(count_sql, database="edm"))
        health = api.call("GET", "/api/monitoring/health")[0]

    total = sum(sum(s.values()) for s in statuses.values())
    fivexx = sum(n for s in statuses.values() for code, n in s.items() if code >= 500)
    result = {
        "database": args.database, "clients": args.clients, "seconds": args.seconds, "requests": total, "requests_per_second": total / args.seconds,
        "status_counts": {k: {str(c): n for c, n in v.items()} for k, v in statuses.items()}, "responses_5xx": fivexx, "responses_5xx_by_route": failures_5xx,
        "connection_errors": len(errors), "first_errors": errors[:5],
        "latency_ms": {k: {"p50": (percentile(v, 0.5) or 0) * 1000, "p99": (percentile(v, 0.99) or 0) * 1000, "n": len(v)} for k, v in latencies.items()},
        "ingest_points_acknowledged": acknowledged_points[0], "ingest_points_stored": stored, "ingest_points_lost": acknowledged_points[0] - stored,
        "health_after": health,
    }
    log(f"{total} requests, 5xx {fivexx}, connection errors {len(errors)}, acknowledged {acknowledged_points[0]} points, stored {stored}")
    write_result(f"load-{args.database}", result)
    raise SystemExit(0 if fivexx == 0 and not errors and stored == acknowledged_points[0] else 1)


if __name__ == "__main__":
    main()
