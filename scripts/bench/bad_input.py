#!/usr/bin/env python3
"""Reliability: a corpus of malformed requests. Every one must get a 4xx answer with the JSON
error shape {"error":{"code","message",...}}, and the server must stay healthy (health 200 and
the data still readable) afterwards.

Corpus: broken JSON, wrong types, huge numbers, NaN/Infinity literals, a 200 MB body, deep
nesting, invalid UTF-8, and SQL-looking strings in filters and path parameters, on the write
endpoints and the list filters. Starts its own `edm-monitor serve` on a fresh SQLite file
(loopback) unless --port names a running one.

  python3 scripts/bench/bad_input.py
"""
from __future__ import annotations

import argparse
import http.client
import json
import socket

from benchlib import API, Stack, log, write_result

METRICS = "/api/monitoring/performance-metrics"
SQLISH = ["' OR '1'='1", "1; DROP TABLE tasks;--", "\" OR \"\"=\"", "%27%20OR%201%3D1--", "x') UNION SELECT * FROM users--"]


def corpus() -> list[tuple[str, str, str, bytes | None, str]]:
    """(label, method, path, body, content type)."""
    deep = b"[" * 100_000 + b"]" * 100_000
    deep_obj = b'{"points":' + b'{"a":' * 50_000 + b"1" + b"}" * 50_000 + b"}"
    cases = [
        ("broken JSON", "POST", METRICS, b'{"points":[{"name":"a","value":1}', "application/json"),
        ("empty body", "POST", METRICS, b"", "application/json"),
        ("not an object", "POST", METRICS, b'"points"', "application/json"),
        ("points not a list", "POST", METRICS, b'{"points":"many"}', "application/json"),
        ("wrong field types", "POST", METRICS, b'{"points":[{"name":1,"value":"high","tags":[1],"timestamp":true}]}', "application/json"),
        ("huge number", "POST", METRICS, b'{"points":[{"name":"edm_x","value":1e999}]}', "application/json"),
        ("huge integer", "POST", METRICS, b'{"points":[{"name":"edm_x","value":' + b"9" * 5000 + b"}]}", "application/json"),
        ("NaN literal", "POST", METRICS, b'{"points":[{"name":"edm_x","value":NaN}]}', "application/json"),
        ("Infinity literal", "POST", METRICS, b'{"points":[{"name":"edm_x","value":-Infinity}]}', "application/json"),
        ("NaN as string", "POST", METRICS, b'{"points":[{"name":"edm_x","value":"NaN"}]}', "application/json"),
        ("huge timestamp", "POST", METRICS, b'{"points":[{"name":"edm_x","value":1,"timestamp":1e300}]}', "application/json"),
        ("deep array nesting", "POST", METRICS, deep, "application/json"),
        ("deep object nesting", "POST", METRICS, deep_obj, "application/json"),
        ("invalid UTF-8", "POST", METRICS, b'{"points":[{"name":"edm_\xff\xfe","value":1,"tags":{"h":"\xc3\x28"}}]}', "application/json"),
        ("lone surrogate escape", "POST", METRICS, b'{"points":[{"name":"edm_x","value":1,"tags":{"h":"\\ud800"}}]}', "application/json"),
        ("wrong content type", "POST", METRICS, b"name=edm_x&value=1", "application/x-www-form-urlencoded"),
        ("user: wrong types", "POST", "/api/users", b'{"name":42,"email":["a"]}', "application/json"),
        ("user: broken JSON", "POST", "/api/users", b'{"name":"x",', "application/json"),
        ("user: invalid UTF-8", "POST", "/api/users", b'{"name":"\xff","email":"a@example.com"}', "application/json"),
        ("service: huge quota", "POST", "/api/email-services", b'{"name":"s","provider":"dry_run","sender_address":"a@example.com","daily_quota":1e40}', "application/json"),
        ("service: NaN interval", "POST", "/api/email-services", b'{"name":"s","provider":"dry_run","sender_address":"a@example.com","daily_quota":1,"sending_interval_seconds":NaN}', "application/json"),
        ("rule: huge threshold", "POST", "/api/monitoring/alert-rules", b'{"name":"r","metric_name":"edm_x","condition_type":"threshold","threshold_value":1e999,"comparison_operator":">","time_window_minutes":5,"severity":"warning"}', "application/json"),
        ("rule: wrong types", "POST", "/api/monitoring/alert-rules", b'{"name":[],"metric_name":{},"time_window_minutes":"five"}', "application/json"),
        ("task: deep nesting", "POST", "/api/tasks", b'{"recipients":' + b"[" * 20_000 + b"]" * 20_000 + b"}", "application/json"),
        ("task: CSV with invalid UTF-8", "POST", "/api/tasks?user_id=00000000-0000-0000-0000-000000000000&name=x&subject=s&text_body=b", b"email\n\xff\xfe@example.com\n", "text/csv"),
        ("silence: wrong types", "POST", "/api/monitoring/silences", b'{"matchers":"all","starts_at":[],"ends_at":1e999}', "application/json"),
        ("query: huge step", "GET", f"{METRICS}?name=edm_x&step=1e308", None, ""),
        ("query: negative range", "GET", f"{METRICS}?name=edm_x&from=2000000000&to=1", None, ""),
        ("query: NaN time", "GET", f"{METRICS}?name=edm_x&from=NaN", None, ""),
        ("page: huge", "GET", "/api/tasks?page=99999999999999999999999", None, ""),
        ("per_page: negative", "GET", "/api/users?per_page=-5", None, ""),
        ("id: not a UUID", "GET", "/api/tasks/1%20OR%201=1", None, ""),
    ]
    from urllib.parse import quote
    for i, text in enumerate(SQLISH):
        q = quote(text, safe="")
        cases += [
            (f"SQL in task status filter {i}", "GET", f"/api/tasks?status={q}", None, ""),
            (f"SQL in alert severity filter {i}", "GET", f"/api/monitoring/alerts?severity={q}&status={q}", None, ""),
            (f"SQL in metric tag filter {i}", "GET", f"{METRICS}?name={q}&tag.host={q}", None, ""),
            (f"SQL in metric name query {i}", "GET", f"{METRICS}?name=edm_x&tag.{q}=1", None, ""),
            (f"SQL in task-metrics filter {i}", "GET", f"/api/monitoring/task-metrics?task_id={q}&metric_type={q}", None, ""),
        ]
    return cases


def send_huge(port: int, path: str, size: int) -> tuple[int, bytes]:
    """Streams a `size`-byte JSON body; the server may answer 413 and close before the end."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.putrequest("POST", path)
    conn.putheader("Content-Type", "application/json")
    conn.putheader("Content-Length", str(size))
    conn.endheaders()
    chunk = b'{"points":[' + b" " * ((1 << 20) - 11)
    sent = 0
    try:
        while sent < size:
            piece = chunk[: min(len(chunk), size - sent)]
            conn.send(piece)
            sent += len(piece)
            chunk = b" " * (1 << 20)
    except (BrokenPipeError, ConnectionResetError, socket.timeout):
        pass
    try:
        resp = conn.getresponse()
        return resp.status, resp.read()
    except (ConnectionResetError, http.client.RemoteDisconnected) as err:
        return 0, str(err).encode()
    finally:
        conn.close()


def check(status: int, payload) -> str | None:
    """None when the answer is a 4xx with the JSON error shape, else what is wrong."""
    if not 400 <= status < 500:
        return f"status {status}"
    if not (isinstance(payload, dict) and isinstance(payload.get("error"), dict) and payload["error"].get("code") and payload["error"].get("message")):
        return f"not the JSON error shape: {str(payload)[:120]}"
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, help="test a running server instead of starting one")
    args = parser.parse_args()
    failures, results = [], []
    with Stack("bad-input") as stack:
        port = args.port or stack.serve()[1]
        api = API(port)
        user = api.ok("POST", "/api/users", {"name": "Ann", "email": "ann@example.com"})
        for label, method, path, body, ctype in corpus():
            status, payload = api.call(method, path, raw=body, content_type=ctype or "application/json")
            problem = check(status, payload)
            results.append({"case": label, "status": status, "ok": problem is None})
            if problem:
                failures.append(f"{label}: {problem}")
        status, raw = send_huge(port, METRICS, 200 * 1024 * 1024)
        try:
            payload = json.loads(raw)
        except ValueError:
            payload = raw[:120]
        problem = check(status, payload)
        results.append({"case": "200 MB body", "status": status, "ok": problem is None})
        if problem:
            failures.append(f"200 MB body: {problem}")
        health, body = api.call("GET", "/api/monitoring/health")
        still = api.call("GET", f"/api/users/{user['id']}")[0]
        healthy = health == 200 and still == 200
        log(f"{len(results)} malformed requests, {len(results) - len(failures)} answered 4xx JSON; health {health}; data readable: {still == 200}")
        for failure in failures:
            log("  FAIL " + failure)
    write_result("bad-input", {"requests": len(results), "answered_4xx_json": len(results) - len(failures), "failures": failures,
                               "healthy_after": healthy, "cases": results})
    raise SystemExit(0 if not failures and healthy else 1)


if __name__ == "__main__":
    main()
