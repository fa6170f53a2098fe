#!/usr/bin/env python3
"""Reliability: a webhook receiver that is down for --down seconds (default 120: nothing
listens on its port) gets every notification afterwards, exactly once.

Three absence rules (window 1 min, webhook channel) fire at the first evaluation while the
receiver is down; after 60 s the missing metrics are sent, so the rules resolve while it is
still down. The receiver comes back on the same port; the script waits (bounded) for the
outbox's retries (10 s doubling) to deliver, then keeps listening 30 s more for duplicates.
Expected: each rule's firing and resolved notifications arrive exactly once per episode (a rule
whose metric stops again after resolving fires a new episode with a new startsAt; that is a new
notification, not a duplicate).

  python3 scripts/bench/receiver_outage.py [--down 120]
"""
from __future__ import annotations

import argparse
import collections
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from benchlib import API, Stack, free_port, log, wait_for, write_result

RULES = 3


class Receiver:
    """An Alertmanager-webhook receiver on 127.0.0.1:port that can be stopped and restarted."""

    def __init__(self, port: int):
        self.port = port
        self.received: list[dict] = []
        self.arrivals: list[tuple] = []
        self.lock = threading.Lock()
        self.server: ThreadingHTTPServer | None = None

    def start(self) -> None:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with outer.lock:
                    outer.received.append(json.loads(body))
                    outer.arrivals.append((time.time(), self.headers.get("Idempotency-Key"), [(a.get("labels", {}).get("alertname"), a.get("status"), a.get("startsAt")) for a in json.loads(body).get("alerts", [])]))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self.server:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def notifications(self) -> collections.Counter:
        """(rule name, status, episode start) → times received. An absence rule whose metric
        stops again fires a new episode (a new startsAt): that is a new notification, not a
        duplicate."""
        counts = collections.Counter()
        with self.lock:
            for payload in self.received:
                for alert in payload.get("alerts", []):
                    counts[(alert.get("labels", {}).get("alertname"), alert.get("status"), alert.get("startsAt"))] += 1
        return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--down", type=float, default=120)
    args = parser.parse_args()
    receiver = Receiver(free_port())
    with Stack("receiver") as stack:
        _, port = stack.serve()
        api = API(port)
        url = f"http://127.0.0.1:{receiver.port}/hook"
        for i in range(RULES):
            api.ok("POST", "/api/monitoring/alert-rules", {
                "name": f"absent-{i}", "metric_name": f"edm_receiver_test_{i}_total", "condition_type": "absence",
                "time_window_minutes": 1, "severity": "warning", "notification_channels": [{"type": "webhook", "url": url}]})
        down_at = time.monotonic()
        log(f"receiver down for {args.down} s; waiting for the rules to fire")
        wait_for(lambda: len(api.ok("GET", "/api/monitoring/alerts?per_page=50")["data"]) >= RULES, timeout=90, interval=2, what="firing")
        time.sleep(max(0.0, down_at + min(60, args.down / 2) - time.monotonic()))
        api.ok("POST", "/api/monitoring/performance-metrics", {"points": [{"name": f"edm_receiver_test_{i}_total", "value": 1} for i in range(RULES)]})
        log("metrics sent; the rules resolve at the next evaluation")
        wait_for(lambda: all(a["status"] == "resolved" for a in api.ok("GET", "/api/monitoring/alerts?per_page=50")["data"]),
                 timeout=90, interval=2, what="resolved")
        time.sleep(max(0.0, down_at + args.down - time.monotonic()))
        received_while_down = len(receiver.received)
        receiver.start()
        up_at = time.monotonic()
        log("receiver up again; waiting for delivery")
        expected = {(f"absent-{i}", status) for i in range(RULES) for status in ("firing", "resolved")}
        try:
            wait_for(lambda: expected <= {k[:2] for k in receiver.notifications()}, timeout=900, interval=2, what="every notification")
        finally:
            delivered_after = time.monotonic() - up_at
            time.sleep(30)  # duplicates would arrive now
            receiver.stop()
    counts = receiver.notifications()
    duplicates = {f"{k[0]}/{k[1]}/{k[2]}": n for k, n in counts.items() if n > 1}
    missing = sorted(f"{k[0]}/{k[1]}" for k in expected - {k[:2] for k in counts})
    result = {"down_seconds": args.down, "notifications_expected": len(expected), "notifications_received": sum(counts.values()),
              "received_while_down": received_while_down, "missing": missing, "duplicates": duplicates,
              "seconds_from_receiver_up_to_all_delivered": round(delivered_after, 1),
              "arrivals": [[round(t - up_at, 1), key, alerts] for t, key, alerts in receiver.arrivals]}
    log(f"expected {len(expected)}, received {sum(counts.values())}, missing {len(missing)}, duplicates {len(duplicates)}")
    write_result("receiver-outage", result)
    raise SystemExit(0 if not missing and not duplicates else 1)


if __name__ == "__main__":
    main()
