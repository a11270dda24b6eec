"""Plumbing for bench/notify.py: databases, outbox rows, child processes, the server, the report."""

from __future__ import annotations

import json
import math
import os
import platform
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from importlib import metadata
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from bench._db import PG_ADMIN, drop_database, pg_admin
from bench._machine import cpu_model

ROOT = Path(__file__).resolve().parent.parent
__all__ = ["drop_database", "pg_admin"]  # used by bench/notify.py from here
SOURCE = "bench"


# ----------------------------------------------------------------------------------------------
# Databases
# ----------------------------------------------------------------------------------------------


def new_pg_database(template: str | None = None) -> str:
    """A new database beside PG_ADMIN's (empty, or a copy of `template`'s, which must be idle)."""
    name = f"bench_notify_{uuid.uuid4().hex[:10]}"
    pg_admin(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{make_url(template).database}"' if template else ""))
    return make_url(PG_ADMIN).set(database=name).render_as_string(hide_password=False)



def scalar(url: str, sql: str, params: dict[str, Any] | None = None) -> Any:
    eng = create_engine(url)
    try:
        with eng.connect() as conn:
            return conn.execute(text(sql), params or {}).scalar()
    finally:
        eng.dispose()


# ----------------------------------------------------------------------------------------------
# Outbox rows inserted directly (figures 2-4): realistic ~300-byte decision payloads
# ----------------------------------------------------------------------------------------------


def decision_payload(i: int, key: str) -> dict[str, Any]:
    """What services.notifications plans for a domain event (see docs/webhooks.md), deterministic in i."""
    at = (datetime(2026, 3, 2, 9, 0, tzinfo=UTC) + timedelta(seconds=i)).isoformat()
    if i % 2 == 0:
        return {"id": key, "type": "line_backordered", "occurred_at": at, "cause": f"{SOURCE}:o{i // 2}",
                "data": {"line_id": "1", "order_id": f"O{i // 2:07d}", "sku": f"SKU-{i % 5000:05d}", "qty": 1 + i % 4,
                         "waiting": 1 + i % 4, "value": round(3.5 * (1 + i % 4), 2), "line_pk": i // 2 + 1}}
    return {"id": key, "type": "eta_changed", "occurred_at": at, "cause": f"{SOURCE}:o{i // 2}",
            "data": {"line_id": "1", "order_id": f"O{i // 2:07d}", "sku": f"SKU-{i % 5000:05d}", "old_eta": None,
                     "new_eta": "2026-03-12", "reason": "supplier_lead_time", "days_late": None,
                     "line_pk": i // 2 + 1}}


def message_key(run: str, i: int) -> str:
    return f"decision:webhook:{run}:{i:08d}"


def outbox_rows(run: str, n: int, recipient: str, now: datetime) -> list[dict[str, Any]]:
    rows = []
    for i in range(n):
        key = message_key(run, i)
        payload = decision_payload(i, key)
        rows.append({
            "idempotency_key": key, "kind": "decision", "channel": "webhook", "recipient": recipient,
            "audience": "system", "order_id": payload["data"]["order_id"], "line_ids": [], "locale": "en",
            "body": f"{payload['type']} {payload['data']['order_id']}", "payload": payload, "facts": {},
            "fallback": [], "urgent": False, "status": "pending", "due_at": now, "attempts": 0,
            "cause": payload["cause"], "created_at": now, "updated_at": now, "occurred_at": now,
        })
    return rows


def payload_bytes(n: int = 200) -> float:
    sizes = [len(json.dumps(decision_payload(i, message_key("x" * 12, i)), separators=(",", ":"), sort_keys=True))
             for i in range(n)]
    return sum(sizes) / len(sizes)


def insert_outbox(url: str, rows: Sequence[dict[str, Any]], chunk: int = 5000) -> float:
    """Insert with the table's own types (SQLAlchemy Core executemany); returns the seconds it took."""
    from store import tables as t

    t0 = time.perf_counter()
    eng = create_engine(url)
    try:
        for start in range(0, len(rows), chunk):
            with eng.begin() as conn:
                conn.execute(t.outbox.insert(), list(rows[start:start + chunk]))
        with eng.connect() as conn:
            if conn.dialect.name == "postgresql":
                conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("VACUUM ANALYZE outbox"))
            else:
                conn.execute(text("ANALYZE"))
                conn.commit()
    finally:
        eng.dispose()
    return time.perf_counter() - t0


def outbox_counts(url: str) -> dict[str, int]:
    eng = create_engine(url)
    try:
        with eng.connect() as conn:
            return {s: int(n) for s, n in conn.execute(text("SELECT status, count(*) FROM outbox GROUP BY status"))}
    finally:
        eng.dispose()


# ----------------------------------------------------------------------------------------------
# Processes
# ----------------------------------------------------------------------------------------------


def bench_env(database_url: str, webhook_url: str, **extra: str) -> dict[str, str]:
    """The environment of every process under test: no config file, only what is set here."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BACKORDER_") or k == "BACKORDER_BENCH_PG"}
    env.update({
        "BACKORDER_CONFIG": os.devnull,
        "BACKORDER_DATABASE_URL": database_url,
        "BACKORDER_WEBHOOK__URL": webhook_url,
        "BACKORDER_WEBHOOK__SECRET": "bench-secret",
        "BACKORDER_WEBHOOK__ALLOW_HTTP": "true",
        "BACKORDER_WEBHOOK__ALLOW_PRIVATE": "true",
        "BACKORDER_NOTIFY__RULES": '{"ops_digest": {"enabled": false}}',
        "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p),
    })
    env.update(extra)
    return env


def phase_cmd(script: str, name: str, opts: dict[str, Any]) -> list[str]:
    return [sys.executable, script, "--phase", name, "--opts", json.dumps(opts)]


def phase_result(out: str, err: str, code: int, name: str) -> dict[str, Any]:
    if code != 0:
        raise RuntimeError(f"phase {name} failed ({code}):\n{err[-4000:]}")
    return json.loads(out.strip().splitlines()[-1])


def run_phase(script: str, name: str, opts: dict[str, Any], env: dict[str, str],
              timeout: float = 900) -> dict[str, Any]:
    t0 = time.perf_counter()
    out = subprocess.run(phase_cmd(script, name, opts), capture_output=True, text=True, cwd=ROOT, env=env,
                         timeout=timeout)
    res = phase_result(out.stdout, out.stderr, out.returncode, name)
    res["process_seconds"] = time.perf_counter() - t0
    return res


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Proc:
    """A `python3 -m backorder ...` child, its output in a log file (shown if it fails)."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.args, self.env, self.log = args, env, log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Proc:
        with self.log.open("wb") as fh:
            self.proc = subprocess.Popen([sys.executable, "-m", "backorder", *self.args], cwd=ROOT, env=self.env,
                                         stdout=subprocess.DEVNULL, stderr=fh)
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def tail(self, n: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def stop(self, timeout: float = 20.0) -> dict[str, Any]:
        """SIGTERM, then SIGKILL after `timeout`; returns how long the graceful stop took and whether it ended."""
        if self.proc is None:
            return {}
        t0 = time.monotonic()
        killed = False
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                killed = True
                self.proc.kill()
                self.proc.wait(5)
        out = {"code": self.proc.returncode, "seconds": time.monotonic() - t0, "killed": killed}
        self.proc = None
        return out


def proc_cpu(pid: int) -> float:
    """CPU seconds (user + system) a process has used so far (Linux /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return math.nan
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pg_backend_cpu(url: str) -> dict[int, float]:
    """CPU seconds so far of every PostgreSQL backend connected to `url`'s database (same machine only)."""
    eng = create_engine(url)
    try:
        with eng.connect() as conn:
            pids = conn.execute(text("SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                                     "AND pid <> pg_backend_pid()")).scalars().all()
    finally:
        eng.dispose()
    return {pid: cpu for pid in pids if (cpu := proc_cpu(pid)) == cpu}


def machine_cpu() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine since boot (Linux /proc/stat)."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return sum(values) - idle, sum(values)


def busy_share(before: tuple[int, int], after: tuple[int, int]) -> float:
    return (after[0] - before[0]) / max(1, after[1] - before[1])


def wait_http(url: str, proc: Proc, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not proc.alive():
            raise RuntimeError(f"{' '.join(proc.args)} exited early:\n{proc.tail()}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer in {timeout}s:\n{proc.tail()}")


def post_json(url: str, body: Any, timeout: float = 120.0) -> dict[str, Any]:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        result: dict[str, Any] = json.loads(resp.read())
        return result


# ----------------------------------------------------------------------------------------------
# Figures
# ----------------------------------------------------------------------------------------------


def percentile(sorted_values: Sequence[float], p: float) -> float:
    """Nearest rank."""
    if not sorted_values:
        return math.nan
    k = max(0, min(len(sorted_values) - 1, math.ceil(p / 100 * len(sorted_values)) - 1))
    return sorted_values[k]


def ms(v: float) -> str:
    return "-" if v != v else f"{v * 1000:,.0f} ms" if v >= 0.1 else f"{v * 1000:,.1f} ms"


def table(rows: Sequence[Sequence[Any]]) -> str:
    """A markdown table (the lead pastes these into BENCHMARKS.md)."""
    cells = [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(cells[0]))]
    line = lambda r: "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |"  # noqa: E731
    return "\n".join([line(cells[0]), "|" + "|".join("-" * (w + 2) for w in widths) + "|",
                      *(line(r) for r in cells[1:])])


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "?"


def conditions() -> dict[str, Any]:
    mem_kb = 0
    cpu = cpu_model()
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    except OSError:
        pass
    info: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"), "cpu_count": os.cpu_count(), "cpu": cpu,
        "memory_gb": round(mem_kb / 1024 / 1024, 1), "loadavg_at_start": os.getloadavg(),
        "python": platform.python_version(), "platform": platform.platform(), "sqlite": sqlite3.sqlite_version,
    }
    eng = create_engine(PG_ADMIN)
    try:
        with eng.connect() as conn:
            info["postgresql"] = conn.execute(text("SHOW server_version")).scalar()
            info["pg_settings"] = {k: conn.execute(text(f"SHOW {k}")).scalar()
                                   for k in ("shared_buffers", "synchronous_commit", "max_connections", "fsync")}
    finally:
        eng.dispose()
    for dist in ("aiohttp", "apprise", "requests", "sqlalchemy", "psycopg", "fastapi", "uvicorn"):
        info[dist] = _version(dist)
    return info
