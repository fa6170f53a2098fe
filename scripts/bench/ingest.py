#!/usr/bin/env python3
"""Benchmark 3 of BENCHMARKS.md: ingest through the API versus bulk-loading into the database.

One `edm-monitor serve` (monitoring on, as shipped) on a fresh SQLite file or a private
PostgreSQL. Each pair: (A) one client POSTs BATCHES batches of 10,000 points to
/api/monitoring/performance-metrics, one after another, timed from the first request to the
last answer; (B) the same number of rows, as CSV, is bulk-loaded straight into
system_performance_metrics with `sqlite3 .import` or `psql \\copy` (timed around the tool,
process start included). A and B alternate in order; the figure is A/B points per second.

B writes raw rows only; A also validates every point and merges it into the 1-minute and
1-hour rollups in the same transaction, so the ratio is the cost of the whole ingest path
over the cheapest way the database can take the same rows.

  python3 scripts/bench/ingest.py --database sqlite --pairs 5 --batches 10
  python3 scripts/bench/ingest.py --database postgres --pairs 5 --batches 10
"""
from __future__ import annotations

import argparse
import json
import subprocess
import time

from benchlib import API, Stack, log, median_summary, write_result

BATCH = 10_000


def make_batch(seq: int, now: float) -> tuple[bytes, list[tuple]]:
    """A JSON body of 10,000 points (200 metrics × 50 series) and the same rows for a bulk load."""
    points, rows = [], []
    for i in range(BATCH):
        name = f"edm_ingest_m{i % 200}_percent"
        tags = {"host": f"h{(i // 200) % 50}", "batch": str(seq)}
        ts = now - 3000 + (i % 3000)
        value = (i * 7919 + seq) % 1000 / 10
        points.append({"name": name, "value": value, "tags": tags, "timestamp": ts})
        rows.append((name, value, "percent", json.dumps(tags, sort_keys=True, separators=(",", ":")), ts))
    return json.dumps({"points": points}).encode(), rows


def bulk_load(stack: Stack, database: str, sqlite_path: str, rows: list[tuple]) -> float:
    csv_path = stack.workdir / "rows.csv"
    now = time.time()
    with open(csv_path, "w") as f:
        for name, value, unit, tags, ts in rows:
            quoted = '"' + tags.replace('"', '""') + '"'
            if database == "sqlite":
                f.write(f"{name},{value},{unit},{quoted},{ts},{now}\n")
            else:
                iso = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + "Z"
                f.write(f"{name},{value},{unit},{quoted},{iso},{iso}\n")
    start = time.monotonic()
    if database == "sqlite":
        # A temporary view gives .import the column list (the id is generated).
        script = (".bail on\n.timeout 30000\n"
                  "CREATE TEMP VIEW bulk AS SELECT metric_name, metric_value, metric_unit, tags, timestamp, created_at FROM system_performance_metrics;\n"
                  "CREATE TEMP TRIGGER bulk_insert INSTEAD OF INSERT ON bulk BEGIN INSERT INTO system_performance_metrics "
                  "(metric_name, metric_value, metric_unit, tags, timestamp, created_at) VALUES (NEW.metric_name, NEW.metric_value, "
                  "NEW.metric_unit, NEW.tags, NEW.timestamp, NEW.created_at); END;\n"
                  f"BEGIN;\n.import --csv {csv_path} bulk\nCOMMIT;\n")
        subprocess.run(["sqlite3", sqlite_path], input=script, text=True, check=True, timeout=600, capture_output=True)
    else:
        stack.postgres.psql(f"\\copy system_performance_metrics (metric_name, metric_value, metric_unit, tags, \"timestamp\", created_at) FROM '{csv_path}' CSV", database="edm")
    return time.monotonic() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--batches", type=int, default=10, help="10,000-point batches per measurement (default 10)")
    args = parser.parse_args()

    ratios, api_rates, bulk_rates = [], [], []
    with Stack("ingest") as stack:
        sqlite_path = str(stack.workdir / "edm.sqlite")
        url = stack.start_postgres().url if args.database == "postgres" else f"sqlite://{sqlite_path}"
        _, port = stack.serve(url)
        api = API(port)
        seq = 0
        for pair in range(args.pairs):
            now = time.time()
            bodies, rows = [], []
            for _ in range(args.batches):
                body, batch_rows = make_batch(seq, now)
                seq += 1
                bodies.append(body)
                rows += batch_rows
            total = len(rows)
            figures = {}
            for which in (["api", "bulk"] if pair % 2 == 0 else ["bulk", "api"]):
                if which == "api":
                    start = time.monotonic()
                    for body in bodies:
                        status, answer = api.call("POST", "/api/monitoring/performance-metrics", raw=body)
                        if status != 201 or answer.get("accepted") != BATCH:
                            raise RuntimeError(f"ingest answered {status}: {str(answer)[:300]}")
                    figures["api"] = total / (time.monotonic() - start)
                else:
                    figures["bulk"] = total / bulk_load(stack, args.database, sqlite_path, rows)
            log(f"pair {pair + 1}: api {figures['api']:.0f} points/s, bulk {figures['bulk']:.0f} points/s")
            api_rates.append(figures["api"])
            bulk_rates.append(figures["bulk"])
            ratios.append(figures["api"] / figures["bulk"])
        # Nothing acknowledged may be missing: every API point and every bulk row is stored.
        count_sql = "SELECT COUNT(*) FROM system_performance_metrics WHERE metric_name LIKE 'edm_ingest_%'"
        if args.database == "sqlite":
            stored = int(subprocess.run(["sqlite3", sqlite_path, count_sql], capture_output=True, text=True, check=True).stdout)
        else:
            stored = int(stack.postgres.psql(count_sql, database="edm"))
        expected = 2 * seq * BATCH
        if stored != expected:
            raise RuntimeError(f"stored {stored} points, expected {expected}")
    write_result(f"ingest-{args.database}", {
        "database": args.database, "pairs": args.pairs, "points_per_measurement": args.batches * BATCH,
        "api_points_per_second": median_summary(api_rates), "bulk_points_per_second": median_summary(bulk_rates),
        "api_to_bulk_ratio": median_summary(ratios), "stored_points_checked": expected,
    })


if __name__ == "__main__":
    main()
