#!/usr/bin/env python3
"""Benchmarks 1 and 2 of BENCHMARKS.md: what monitoring costs sending, and sending vs the wire.

Each pair starts two fresh `edm-monitor serve` processes one after the other (fresh SQLite file
or PostgreSQL database each), one with all monitoring on (the default) and one with
EDM_MONITORING=off, in alternating order. Each creates 4 SMTP services (interval 0, quota far
above the count) pointing at one Postfix `smtp-sink`, imports a task of COUNT recipients while the
services are disabled, then enables them and times the task from its first to its last send
(server `started_at` → `completed_at`). After each pair Postfix's own `smtp-source` delivers
the same COUNT messages to the same sink over as many parallel sessions as our 4 services may
open in all (4 × --connections, reusing connections, -d).

Figures: on/off throughput ratio per pair and ours/smtp-source ratio per pair; median, min, max.

  python3 scripts/bench/sending.py --count 20000 --pairs 5          # the issue's setting
  python3 scripts/bench/sending.py --count 2000 --pairs 3 --database postgres
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import time
import uuid
from datetime import datetime

from benchlib import API, Stack, log, median_summary, wait_for, write_result

BODY = "Hello {{name}},\n\n" + ("This is the spring newsletter of a benchmark. " * 22) + "\n"  # ≈ 1 KB, like smtp-source -l 1000


def parse_time(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def run_ours(stack: Stack, sink_port: int, count: int, monitoring: bool, database: str, connections: int) -> dict:
    db_url = None
    if database == "postgres":
        name = f"edm_{uuid.uuid4().hex[:8]}"
        stack.postgres.psql(f"CREATE DATABASE {name}")
        db_url = stack.postgres.url.replace("/edm?", f"/{name}?")
    else:
        db_url = f"sqlite://{stack.workdir}/send-{uuid.uuid4().hex[:8]}.sqlite"
    proc, port = stack.serve(db_url, env={"EDM_MONITORING": "on" if monitoring else "off"}, log_name="send")
    try:
        api = API(port)
        user = api.ok("POST", "/api/users", {"name": "Bench", "email": "bench@example.com"})
        services = []
        for i in range(4):
            services.append(api.ok("POST", "/api/email-services", {
                "name": f"sink-{i}", "provider": "smtp", "smtp": {"host": "127.0.0.1", "port": sink_port, "security": "none"},
                "sender_address": "news@example.com", "daily_quota": 10_000_000, "sending_interval_seconds": 0, "is_enabled": False,
                "max_connections": connections,
            })["id"])
        csv = "email,name\n" + "".join(f"r{i}@example.net,Reader {i}\n" for i in range(count))
        query = f"/api/tasks?user_id={user['id']}&name=bench&subject=Hello%20%7B%7Bname%7D%7D&text_body=" + urlquote(BODY)
        task = api.ok("POST", query, raw=csv.encode(), content_type="text/csv", timeout=600)["task"]
        start = time.monotonic()
        for sid in services:
            api.ok("POST", f"/api/email-services/{sid}/enable")

        def done():
            t = api.ok("GET", f"/api/tasks/{task['id']}")
            return t if t.get("completed_at") and t["sent"] + t["failed"] >= count else None
        final = wait_for(done, timeout=max(600, count / 5), interval=0.5, what="task completion")
        wall = time.monotonic() - start
        span = parse_time(final["completed_at"]) - parse_time(final["started_at"])
        if final["failed"]:
            raise RuntimeError(f"{final['failed']} of {count} failed; see {stack.workdir}/send.log")
        return {"monitoring": monitoring, "sent": final["sent"], "seconds": span, "wall_seconds": wall, "per_second": final["sent"] / span}
    finally:
        stack.stop(proc)


def urlquote(text: str) -> str:
    from urllib.parse import quote
    return quote(text, safe="")


def run_wire(sink_port: int, count: int, sessions: int) -> dict:
    source = shutil.which("smtp-source") or "/usr/sbin/smtp-source"
    start = time.monotonic()
    subprocess.run([source, "-d", "-s", str(sessions), "-m", str(count), "-l", "1000", "-N", "-f", "news@example.com", "-t", "reader@example.net",
                    f"127.0.0.1:{sink_port}"], check=True, timeout=600, stdout=subprocess.DEVNULL)
    seconds = time.monotonic() - start
    return {"sent": count, "seconds": seconds, "per_second": count / seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=20_000, help="emails per run (default 20000)")
    parser.add_argument("--pairs", type=int, default=5, help="interleaved on/off pairs (default 5)")
    parser.add_argument("--database", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--connections", type=int, default=4,
                        help="max_connections of each of the 4 services; smtp-source gets 4 × this many sessions (default 4)")
    args = parser.parse_args()

    runs, overhead, wire = [], [], []
    with Stack("sending") as stack:
        if args.database == "postgres":
            stack.start_postgres()
        sink = stack.smtp_sink()
        for pair in range(args.pairs):
            order = [True, False] if pair % 2 == 0 else [False, True]
            result = {}
            for monitoring in order:
                r = run_ours(stack, sink, args.count, monitoring, args.database, args.connections)
                log(f"pair {pair + 1}: monitoring {'on ' if monitoring else 'off'} {r['per_second']:.1f}/s ({r['seconds']:.1f} s)")
                result[monitoring] = r
                runs.append(r)
            w = run_wire(sink, args.count, 4 * args.connections)
            log(f"pair {pair + 1}: smtp-source {w['per_second']:.1f}/s ({w['seconds']:.2f} s)")
            wire.append({"smtp_source_per_second": w["per_second"], "ours_on_per_second": result[True]["per_second"],
                         "ratio_ours_on_to_wire": result[True]["per_second"] / w["per_second"]})
            overhead.append(result[True]["per_second"] / result[False]["per_second"])
    write_result(f"sending-{args.database}", {
        "count": args.count, "pairs": args.pairs, "database": args.database, "connections_per_service": args.connections,
        "smtp_source_sessions": 4 * args.connections, "runs": runs,
        "on_off_ratio": median_summary(overhead),
        "on_per_second": median_summary([r["per_second"] for r in runs if r["monitoring"]]),
        "off_per_second": median_summary([r["per_second"] for r in runs if not r["monitoring"]]),
        "smtp_source_per_second": median_summary([w["smtp_source_per_second"] for w in wire]),
        "ours_to_wire_ratio": median_summary([w["ratio_ours_on_to_wire"] for w in wire]),
    })


if __name__ == "__main__":
    main()
