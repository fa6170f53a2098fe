"""Shared helpers of the end-to-end benchmark and reliability scripts (scripts/bench/).

Everything listens on 127.0.0.1 only, every wait is bounded, and every process started here is
stopped by the `Stack` that started it (also on Ctrl-C). Standard library only.

The edm-monitor binary is taken from $EDM_BIN, else .build/release/edm-monitor, else
.build/debug/edm-monitor (build it first: `swift build -c release`).
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def log(*parts: object) -> None:
    print(*parts, file=sys.stderr, flush=True)


def binary() -> str:
    if os.environ.get("EDM_BIN"):
        return os.environ["EDM_BIN"]
    for kind in ("release", "debug"):
        path = ROOT / ".build" / kind / "edm-monitor"
        if path.exists():
            return str(path)
    sys.exit("edm-monitor not built: run `swift build -c release` (or set EDM_BIN)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


def median_summary(values: list[float]) -> dict:
    """Median, min and max of a list of figures (the noise of interleaved pairs)."""
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


class API:
    """A tiny JSON client for one server; sends `Authorization: Bearer` when a token is given
    (flag --token or $EDM_API_TOKEN)."""

    def __init__(self, port: int, token: str | None = None):
        self.base = f"http://127.0.0.1:{port}"
        self.token = token or os.environ.get("EDM_API_TOKEN")

    def call(self, method: str, path: str, body=None, content_type: str = "application/json", timeout: float = 120,
             raw: bytes | None = None, headers: dict | None = None):
        """(status, parsed JSON or text). Never raises for HTTP errors."""
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        req = urllib.request.Request(self.base + path, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", content_type)
        if self.token:
            req.add_header("Authorization", f"Bearer {self.token}")
        for k, v in (headers or {}).items():
            req.add_header(k, v)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                status, payload, ctype = resp.status, resp.read(), resp.headers.get("content-type", "")
        except urllib.error.HTTPError as err:
            status, payload, ctype = err.code, err.read(), err.headers.get("content-type", "")
        if "json" in ctype:
            try:
                return status, json.loads(payload)
            except ValueError:
                pass
        return status, payload.decode("utf-8", "replace")

    def ok(self, method: str, path: str, body=None, **kw):
        status, answer = self.call(method, path, body, **kw)
        if status >= 300:
            raise RuntimeError(f"{method} {path} → {status}: {str(answer)[:300]}")
        return answer


class Postgres:
    """A private, throwaway PostgreSQL cluster on a free loopback port (fsync off, as the tests)."""

    def __init__(self, workdir: Path):
        bins = sorted(Path("/usr/lib/postgresql").glob("*/bin"))
        if not bins:
            raise RuntimeError("PostgreSQL binaries not found in /usr/lib/postgresql/*/bin (apt-get install postgresql)")
        self.bin = bins[-1]
        self.dir = workdir / "pg"
        self.data = self.dir / "data"
        self.port = free_port()
        self.dir.mkdir(parents=True)
        self.user = "postgres" if os.geteuid() == 0 else None
        if self.user:
            shutil.chown(self.dir, self.user)
            os.chmod(workdir, 0o755)
        self._pg("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8", "--locale=C")
        self.start()
        self.psql("CREATE DATABASE edm")

    def _pg(self, tool: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        cmd = [str(self.bin / tool), *args]
        if self.user:
            cmd = ["runuser", "-u", self.user, "--", *cmd]
        return subprocess.run(cmd, check=check, capture_output=True, text=True, timeout=120)

    def start(self) -> None:
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.data} -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300"
        self._pg("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.dir / "server.log"), "-w", "-t", "60", "start")

    def stop(self, mode: str = "fast") -> None:
        self._pg("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop", check=False)

    def psql(self, sql: str, database: str = "postgres", stdin: str | None = None) -> str:
        result = subprocess.run([str(self.bin / "psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d", database,
                                 "-v", "ON_ERROR_STOP=1", "-q", "-At", "-c", sql], input=stdin, capture_output=True, text=True, timeout=600)
        if result.returncode != 0:
            raise RuntimeError(f"psql failed: {result.stderr.strip()}")
        return result.stdout.strip()

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/edm?sslmode=disable"


class Stack:
    """Owns the processes and folders of one benchmark run; `close()` (or `with`) ends them all."""

    def __init__(self, name: str):
        self.workdir = Path(tempfile.mkdtemp(prefix=f"edm-{name}-"))
        self.procs: list[subprocess.Popen] = []
        self.postgres: Postgres | None = None

    def __enter__(self) -> "Stack":
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run __exit__ on kill
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=5)
        self.procs.clear()
        if self.postgres:
            self.postgres.stop("immediate")
            self.postgres = None
        if os.environ.get("EDM_BENCH_KEEP"):
            log(f"kept {self.workdir} (EDM_BENCH_KEEP)")
        else:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def start_postgres(self) -> Postgres:
        self.postgres = Postgres(self.workdir)
        return self.postgres

    def smtp_sink(self) -> int:
        """Postfix's smtp-sink on a free loopback port (accepts and discards every message)."""
        port = free_port()
        sink = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"
        args = [sink, "-c", "-m", "64"]
        if os.geteuid() == 0:
            args += ["-u", "nobody"]
        proc = subprocess.Popen(args + [f"127.0.0.1:{port}", "256"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.procs.append(proc)
        wait_port(port)
        return port

    def serve(self, database_url: str | None = None, env: dict | None = None, log_name: str = "serve") -> tuple[subprocess.Popen, int]:
        """Starts `edm-monitor serve` on a free port; returns the process and the port."""
        port = free_port()
        environment = dict(os.environ)
        environment.update({
            "EDM_DATABASE_URL": database_url or f"sqlite://{self.workdir}/edm.sqlite",
            "EDM_HTTP_PORT": str(port), "EDM_LOG_LEVEL": environment.get("EDM_LOG_LEVEL", "warning"),
        })
        environment.update(env or {})
        logfile = open(self.workdir / f"{log_name}.log", "ab")
        proc = subprocess.Popen([binary(), "serve"], env=environment, stdout=logfile, stderr=logfile, cwd=self.workdir)
        self.procs.append(proc)
        wait_port(port, timeout=120)
        return proc, port

    def stop(self, proc: subprocess.Popen, sig: int = signal.SIGTERM) -> None:
        if proc.poll() is None:
            proc.send_signal(sig)
            proc.wait(timeout=30)
        if proc in self.procs:
            self.procs.remove(proc)


def wait_for(predicate, timeout: float, interval: float = 0.25, what: str = "condition"):
    """Polls `predicate` until it returns a truthy value (returned) or `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"{what} not reached within {timeout} s")


def write_result(name: str, result: dict) -> None:
    """Prints the result as JSON on stdout and keeps a copy in scripts/bench/results/NAME.json."""
    out = ROOT / "scripts" / "bench" / "results"
    out.mkdir(exist_ok=True)
    text = json.dumps(result, indent=2, sort_keys=True)
    (out / f"{name}.json").write_text(text + "\n")
    print(text)
