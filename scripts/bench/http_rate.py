#!/usr/bin/env python3
"""Benchmark 5 of BENCHMARKS.md: requests per second of the health check and a cached status
endpoint against a bare Vapor route of the same build.

Starts `edm-bench serve-bare` (the application as `serve` configures it, system monitor
running, plus `GET /bench/bare` answering a constant) on a fresh SQLite file, then runs wrk
(loopback, bounded by --seconds) against, in rotating order each pair:
  GET /api/monitoring/health          (the background database probe's last result, no query)
  GET /api/monitoring/system-health   (the system monitor's cached snapshot, no query)
  GET /bench/bare                     (Vapor's floor)
Figures: each endpoint's req/s over the bare route's in the same pair; median, min, max.

  swift build -c release --package-path Benchmarks --scratch-path .build   # builds edm-bench
  python3 scripts/bench/http_rate.py --pairs 5 --seconds 10 --connections 32
  python3 scripts/bench/http_rate.py --pairs 5 --seconds 10 --connections 200 --name http200   # the 200-client run

Non-2xx answers are counted per endpoint (`non_2xx`): health must answer 0 x 503 while the
database works.
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys

from benchlib import ROOT, Stack, free_port, log, median_summary, wait_port, write_result

ENDPOINTS = {"health": "/api/monitoring/health", "status": "/api/monitoring/system-health", "bare": "/bench/bare"}


def wrk(port: int, path: str, seconds: int, connections: int) -> dict:
    out = subprocess.run(["wrk", "-t", "2", "-c", str(connections), "-d", f"{seconds}s", "--latency", f"http://127.0.0.1:{port}{path}"],
                         capture_output=True, text=True, check=True, timeout=seconds + 60).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    scale = {"us": 0.001, "ms": 1, "s": 1000}
    return {"rps": rate, "non_2xx": int(non2xx.group(1)) if non2xx else 0, "p99_ms": float(p99.group(1)) * scale[p99.group(2)] if p99 else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--name", default="http", help="result file name under scripts/bench/results/")
    args = parser.parse_args()
    bench = os.environ.get("EDM_BENCH_BIN", str(ROOT / ".build" / "release" / "edm-bench"))
    if not os.path.exists(bench):
        sys.exit(f"{bench} not built: swift build -c release --package-path Benchmarks --scratch-path .build")

    results: dict[str, list] = {name: [] for name in ENDPOINTS}
    with Stack("http") as stack:
        port = free_port()
        proc = subprocess.Popen([bench, "serve-bare", "--port", str(port), "--dir", str(stack.workdir)],
                                stdout=subprocess.DEVNULL, stderr=open(stack.workdir / "bare.log", "wb"))
        stack.procs.append(proc)
        wait_port(port, timeout=120)
        names = list(ENDPOINTS)
        for pair in range(args.pairs):
            order = names[pair % 3:] + names[:pair % 3]
            for name in order:
                r = wrk(port, ENDPOINTS[name], args.seconds, args.connections)
                log(f"pair {pair + 1}: {name:6} {r['rps']:.0f} req/s, p99 {r['p99_ms']} ms, non-2xx {r['non_2xx']}")
                results[name].append(r)
    ratio = lambda name: median_summary([a["rps"] / b["rps"] for a, b in zip(results[name], results["bare"])])
    write_result(args.name, {
        "pairs": args.pairs, "seconds": args.seconds, "connections": args.connections,
        "rps": {name: median_summary([r["rps"] for r in rs]) for name, rs in results.items()},
        "p99_ms": {name: median_summary([r["p99_ms"] for r in rs]) for name, rs in results.items()},
        "non_2xx": {name: sum(r["non_2xx"] for r in rs) for name, rs in results.items()},
        "health_over_bare": ratio("health"), "status_over_bare": ratio("status"),
    })


if __name__ == "__main__":
    main()
