#!/usr/bin/env python3
"""Reliability: PostgreSQL stopped for --down seconds (default 30) while the server sends and
collects.

Set-up: a private PostgreSQL, `edm-monitor serve` on it (system collectors every 2 s), one SMTP
service (interval 0.05 s) to Postfix's `smtp-sink` sending a task of --count recipients, an
absence rule that is firing, and an ingest client POSTing 100-point batches every 0.2 s and
counting what was acknowledged (201). Once sending is under way PostgreSQL gets a fast
shutdown; it is started again after --down seconds.

Checked afterwards:
- health answered 503 (or `degraded`) during the outage and 200 again after it;
- the task finished with no subtask failed (the scheduler paused, it did not fail sends);
- every acknowledged ingest point is stored (none lost), and what was refused during the
  outage got a 5xx, never a 201;
- collector points timestamped inside the outage exist (buffered and flushed on recovery);
- the firing absence alert did not resolve (other rules may fire and resolve on the outage's
  own figures, e.g. the API error rate).

  python3 scripts/bench/db_outage.py [--down 30] [--count 300]
"""
from __future__ import annotations

import argparse
import collections
import json
import threading
import time

from benchlib import API, Stack, log, wait_for, write_result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--down", type=float, default=30)
    parser.add_argument("--count", type=int, default=300)
    args = parser.parse_args()
    with Stack("db-outage") as stack:
        pg = stack.start_postgres()
        sink = stack.smtp_sink()
        _, port = stack.serve(pg.url, env={"EDM_SYSTEM_MONITOR_INTERVAL_SECONDS": "2"})
        api = API(port)
        user = api.ok("POST", "/api/users", {"name": "Ann", "email": "ann@example.com"})
        api.ok("POST", "/api/email-services", {
            "name": "sink", "provider": "smtp", "smtp": {"host": "127.0.0.1", "port": sink, "security": "none"},
            "sender_address": "news@example.com", "daily_quota": 1_000_000, "sending_interval_seconds": 0.05})
        api.ok("POST", "/api/monitoring/alert-rules", {"name": "absent", "metric_name": "edm_never_sent_total", "condition_type": "absence",
                                                       "time_window_minutes": 1, "severity": "warning"})
        wait_for(lambda: api.ok("GET", "/api/monitoring/alerts")["data"], timeout=90, interval=2, what="the absence alert firing")
        recipients = [{"email": f"r{i}@example.net", "name": f"R{i}"} for i in range(args.count)]
        task = api.ok("POST", "/api/tasks", {"user_id": user["id"], "name": "outage", "subject": "Hi", "text_body": "Hello {{name}}",
                                             "recipients": recipients})["task"]
        wait_for(lambda: api.ok("GET", f"/api/tasks/{task['id']}")["sent"] >= 20, timeout=60, what="sending under way")

        stop = threading.Event()
        ingest = {"acknowledged": 0, "statuses": collections.Counter()}
        health_log: list[tuple[float, int, str]] = []

        def ingest_client() -> None:
            seq = 0
            while not stop.is_set():
                points = [{"name": "edm_outage_ingest_percent", "value": i, "tags": {"seq": str(seq)}} for i in range(100)]
                seq += 1
                status, _ = api.call("POST", "/api/monitoring/performance-metrics", {"points": points}, timeout=30)
                ingest["statuses"][status] += 1
                if status == 201:
                    ingest["acknowledged"] += 100
                time.sleep(0.2)

        def health_poller() -> None:
            while not stop.is_set():
                status, body = api.call("GET", "/api/monitoring/health", timeout=30)
                health_log.append((time.time(), status, body.get("status", "?") if isinstance(body, dict) else "?"))
                time.sleep(1)

        threads = [threading.Thread(target=ingest_client), threading.Thread(target=health_poller)]
        for t in threads:
            t.start()
        time.sleep(3)
        down_from = time.time()
        pg.stop("fast")
        log(f"PostgreSQL stopped for {args.down} s")
        time.sleep(args.down)
        pg.start()
        down_to = time.time()
        log("PostgreSQL started again")
        time.sleep(10)
        stop.set()
        for t in threads:
            t.join(timeout=60)
        final = wait_for(lambda: (lambda t: t if t["sent"] + t["failed"] >= args.count else None)(api.ok("GET", f"/api/tasks/{task['id']}")),
                         timeout=600, interval=1, what="task completion")
        time.sleep(5)
        stored = int(pg.psql("SELECT COUNT(*) FROM system_performance_metrics WHERE metric_name = 'edm_outage_ingest_percent'", database="edm"))
        collected_in_outage = int(pg.psql(
            "SELECT COUNT(*) FROM system_performance_metrics WHERE metric_name LIKE 'edm_process_%' "
            f"AND \"timestamp\" > to_timestamp({down_from + 1}) AND \"timestamp\" < to_timestamp({down_to - 1})", database="edm"))
        alerts = api.ok("GET", "/api/monitoring/alerts?per_page=50")["data"]

    during = [h for h in health_log if down_from + 2 < h[0] < down_to]
    after = [h for h in health_log if h[0] > down_to + 5]
    result = {
        "down_seconds": args.down,
        "health_during": dict(collections.Counter(f"{s} {b}" for _, s, b in during)),
        "health_after": dict(collections.Counter(f"{s} {b}" for _, s, b in after)),
        "task": {"total": args.count, "sent": final["sent"], "failed": final["failed"], "status": final["status"]},
        "ingest_status_counts": {str(k): v for k, v in ingest["statuses"].items()},
        "ingest_points_acknowledged": ingest["acknowledged"], "ingest_points_stored": stored,
        "ingest_points_lost": ingest["acknowledged"] - stored,
        "collector_points_timestamped_in_outage": collected_in_outage,
        "absence_alert_statuses_after": [a["status"] for a in alerts if a.get("rule_name") == "absent"],
        "other_alerts_after": [f"{a.get('rule_name')}: {a['status']}" for a in alerts if a.get("rule_name") != "absent"],
    }
    ok = (all(s == 503 or b == "degraded" for _, s, b in during) and during and all(s == 200 for _, s, _ in after)
          and final["failed"] == 0 and stored == ingest["acknowledged"] and collected_in_outage > 0
          and all(a["status"] != "resolved" for a in alerts if a.get("rule_name") == "absent") and ingest["statuses"].get(500, 0) == 0)
    log(json.dumps(result))
    write_result("db-outage", result)
    raise SystemExit(0 if ok else 1)


if __name__ == "__main__":
    main()
