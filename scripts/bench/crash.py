#!/usr/bin/env python3
"""Reliability: `kill -9` an instance mid-send and restart it on the same database.

A slow Postfix `smtp-sink` (it waits --delay seconds before answering DATA, so a message is
always in flight) receives a task of --count recipients through one SMTP service. When
--kill-after messages have been accepted the server gets SIGKILL; a new `serve` starts on the
same SQLite file (or PostgreSQL database). Checked: the task finishes (sent + failed = total),
no recipient received two messages (every delivery is dumped by the sink and counted by
recipient), every recipient was either delivered or reported failed, and the subtask that was
in flight is reported failed with reason `interrupted` (after its 30 s lease expires).

  python3 scripts/bench/crash.py [--count 20] [--kill-after 5] [--database postgres]
"""
from __future__ import annotations

import argparse
import collections
import os
import re
import shutil
import signal
import subprocess
import time

from benchlib import API, Stack, free_port, log, wait_for, wait_port, write_result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=20)
    parser.add_argument("--kill-after", type=int, default=5)
    parser.add_argument("--delay", type=int, default=1, help="whole seconds the sink waits before answering DATA")
    parser.add_argument("--database", choices=["sqlite", "postgres"], default="sqlite")
    args = parser.parse_args()
    with Stack("crash") as stack:
        dumps = stack.workdir / "dumps"
        dumps.mkdir()
        os.chmod(dumps, 0o777)
        os.chmod(stack.workdir, 0o755)
        sink_port = free_port()
        sink_cmd = [shutil.which("smtp-sink") or "/usr/sbin/smtp-sink", "-w", str(args.delay), "-d", f"{dumps}/%H%M%S."]
        if os.geteuid() == 0:
            sink_cmd += ["-u", "nobody"]
        stack.procs.append(subprocess.Popen(sink_cmd + [f"127.0.0.1:{sink_port}", "64"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        wait_port(sink_port)
        url = stack.start_postgres().url if args.database == "postgres" else None

        proc, port = stack.serve(url, log_name="first")
        api = API(port)
        user = api.ok("POST", "/api/users", {"name": "Ann", "email": "ann@example.com"})
        api.ok("POST", "/api/email-services", {
            "name": "slow-sink", "provider": "smtp", "smtp": {"host": "127.0.0.1", "port": sink_port, "security": "none"},
            "sender_address": "news@example.com", "daily_quota": 100_000, "sending_interval_seconds": 0})
        recipients = [{"email": f"r{i}@example.net", "name": f"R{i}"} for i in range(args.count)]
        task = api.ok("POST", "/api/tasks", {"user_id": user["id"], "name": "crash", "subject": "Hi", "text_body": "Hello {{name}}",
                                             "recipients": recipients})["task"]
        wait_for(lambda: api.ok("GET", f"/api/tasks/{task['id']}")["sent"] >= args.kill_after, timeout=120, what="first sends")
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        stack.procs.remove(proc)
        killed_at = time.monotonic()
        log(f"killed -9 after {args.kill_after}+ sends; restarting")

        _, port = stack.serve(url, log_name="second")
        api = API(port)
        final = wait_for(lambda: (lambda t: t if t["sent"] + t["failed"] >= args.count else None)(api.ok("GET", f"/api/tasks/{task['id']}")),
                         timeout=180, interval=1, what="task completion after restart")
        recovery = time.monotonic() - killed_at
        time.sleep(max(1.0, args.delay * 3))  # let the sink finish writing its last dump
        deliveries = collections.Counter()
        for path in stack_dump_files(dumps):
            text = path.read_text(errors="replace")
            found = re.findall(r"X-Rcpt-Args: <([^>]+)>", text) or re.findall(r"^To:.*?<?([\w.+-]+@[\w.-]+)>?\s*$", text, re.M)
            for rcpt in set(found):
                deliveries[rcpt.lower()] += 1

    duplicates = {r: n for r, n in deliveries.items() if n > 1}
    result = {
        "database": args.database, "recipients": args.count, "sent": final["sent"], "failed": final["failed"], "status": final["status"],
        "delivered_by_sink": sum(deliveries.values()), "duplicates": duplicates, "recovery_seconds": round(recovery, 1),
        "interrupted_reported": final["failed"],
    }
    log(f"task {final['status']}: sent {final['sent']}, failed {final['failed']} (interrupted), sink saw {sum(deliveries.values())}, duplicates {len(duplicates)}")
    write_result(f"crash-{args.database}", result)
    ok = not duplicates and final["sent"] + final["failed"] == args.count and sum(deliveries.values()) >= final["sent"]
    raise SystemExit(0 if ok else 1)


def stack_dump_files(folder):
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


if __name__ == "__main__":
    main()
