#!/usr/bin/env python3
"""Issue #14 acceptance 4 (one instance): is pacing exact?

Starts `edm-monitor serve` (SQLite) and Postfix's `smtp-sink`, creates one SMTP service paced
either by `rate_limit_per_second` (token bucket) or by `sending_interval_seconds` (least gap),
imports a task of enough recipients for the whole run, enables the service, lets it run for
--warmup seconds (the bucket's first second of burst), then reads the task's sent count through
the API at the start and the end of a --seconds window (monotonic clock between the two reads)
and reports the measured rate against the configured one.

  python3 scripts/bench/pacing.py                     # rate 50/s and interval 0.05 s, 60 s each
  python3 scripts/bench/pacing.py --modes rate --seconds 30
"""
from __future__ import annotations

import argparse
import time
import uuid

from benchlib import API, Stack, log, write_result


def measure(stack: Stack, sink: int, mode: str, seconds: float, warmup: float) -> dict:
    proc, port = stack.serve(f"sqlite://{stack.workdir}/pacing-{uuid.uuid4().hex[:8]}.sqlite", log_name="pacing")
    try:
        api = API(port)
        user = api.ok("POST", "/api/users", {"name": "Bench", "email": "bench@example.com"})
        pacing = {"rate_limit_per_second": 50} if mode == "rate" else {"sending_interval_seconds": 0.05}
        service = api.ok("POST", "/api/email-services", {
            "name": f"paced-{mode}", "provider": "smtp", "smtp": {"host": "127.0.0.1", "port": sink, "security": "none"},
            "sender_address": "news@example.com", "daily_quota": 10_000_000, "is_enabled": False, **pacing,
        })
        wanted = 50.0 if mode == "rate" else 20.0
        count = int(wanted * (seconds + warmup + 30))  # more than the run can send: never runs dry
        csv = "email,name\n" + "".join(f"r{i}@example.net,Reader {i}\n" for i in range(count))
        task = api.ok("POST", f"/api/tasks?user_id={user['id']}&name=pacing&subject=Hi&text_body=Hello", raw=csv.encode(),
                      content_type="text/csv", timeout=600)["task"]
        api.ok("POST", f"/api/email-services/{service['id']}/enable")
        time.sleep(warmup)
        start_sent, start = api.ok("GET", f"/api/tasks/{task['id']}")["sent"], time.monotonic()
        time.sleep(seconds)
        end_sent, end = api.ok("GET", f"/api/tasks/{task['id']}")["sent"], time.monotonic()
        rate = (end_sent - start_sent) / (end - start)
        return {"mode": mode, "configured_per_second": wanted, "measured_per_second": rate,
                "error_percent": 100 * (rate - wanted) / wanted, "seconds": end - start, "sent": end_sent - start_sent}
    finally:
        stack.stop(proc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--modes", default="rate,interval", help="comma-separated: rate (50/s), interval (0.05 s)")
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--warmup", type=float, default=5)
    args = parser.parse_args()
    results = []
    with Stack("pacing") as stack:
        sink = stack.smtp_sink()
        for mode in args.modes.split(","):
            r = measure(stack, sink, mode, args.seconds, args.warmup)
            log(f"{mode}: {r['measured_per_second']:.2f}/s against {r['configured_per_second']:.0f}/s ({r['error_percent']:+.2f} %)")
            results.append(r)
    write_result("pacing", {"runs": results})


if __name__ == "__main__":
    main()
