"""Scale-out: `backorder serve --workers N` as separate processes on one port, and backpressure (services/backlog.py)
in /readyz, /metrics and POST /events?wait=false, against the real store (SQLite and PostgreSQL)."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine, func, select

from bot.api import create_app
from services.context import Context
from services.heartbeats import beat
from store import tables as t
from tests.integration.test_api_flow import ev, seed
from tests.integration.test_retention import outbox_row

STARTUP_BOUND_S = 120  # two cores shared by several test runs: spawning and importing can take a while
DEPTH = 5


def orders(n: int, prefix: str = "o") -> list[dict[str, Any]]:
    return [ev(f"{prefix}{k}", "order.placed", {
        "order_id": f"{prefix.upper()}-{k}", "customer_id": "C1", "placed_at": "2026-03-01T11:00:00Z",
        "promised_date": "2026-03-05", "lines": [{"line_id": "1", "sku": "KTL-200", "qty": 1, "unit_price": 40}]})
        for k in range(n)]


def gauges(text: str) -> dict[str, float]:
    return {s.name: s.value for fam in text_string_to_metric_families(text) for s in fam.samples if not s.labels}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- several processes on one port -----------------------------------------------------------------

class Served:
    """`backorder serve --workers 2` as a subprocess; its output read on a thread so the pipe never fills."""

    def __init__(self, database_url: str, cwd: Path) -> None:
        self.port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("BACKORDER_")}
        env |= {"BACKORDER_DATABASE_URL": database_url, "BACKORDER_INTAKE__BACKLOG_WARN_DEPTH": str(DEPTH),
                "BACKORDER_LOGGING__FORMAT": "text", "BACKORDER_LOGGING__LEVEL": "INFO"}
        self.proc = subprocess.Popen([sys.executable, "-m", "backorder", "serve", "--workers", "2",
                                      "--port", str(self.port)], cwd=cwd, env=env, text=True,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)

    def output(self) -> str:
        return "".join(self.lines)

    def children_started(self) -> list[int]:
        """The server processes that finished starting up (uvicorn logs each pid, then its startup)."""
        started = [int(p) for p in re.findall(r"Started server process \[(\d+)\]", self.output())]
        return started if self.output().count("Application startup complete") >= 2 else []

    def wait_started(self) -> list[int]:
        deadline = time.monotonic() + STARTUP_BOUND_S
        while time.monotonic() < deadline and self.proc.poll() is None:
            if len(pids := self.children_started()) >= 2:
                return pids
            time.sleep(0.2)
        raise AssertionError(f"serve --workers 2 did not start two processes:\n{self.output()}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)  # its own session: the parent and its two children
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self._reader.join(timeout=10)


@pytest.fixture
def served(engine: Engine, tmp_path: Path) -> Iterator[Served]:
    server = Served(engine.url.render_as_string(hide_password=False), tmp_path)  # tmp_path: no stray backorder.toml
    try:
        yield server
    finally:
        server.stop()


def listening_inode(port: int) -> str:
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1] == f"0100007F:{port:04X}" and fields[3] == "0A":  # 127.0.0.1:port, LISTEN
            return fields[9]
    raise AssertionError(f"nothing listens on 127.0.0.1:{port}")


def holds_socket(pid: int, inode: str) -> bool:
    fds = Path(f"/proc/{pid}/fd")
    return any(os.readlink(fd) == f"socket:[{inode}]" for fd in fds.iterdir() if fd.is_symlink())


def parent_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def test_serve_workers_runs_two_api_processes_on_one_port_and_reports_the_backlog(served: Served,
                                                                                   engine: Engine) -> None:
    pids = served.wait_started()
    assert len(set(pids)) == 2
    inode = listening_inode(served.port)
    for pid in pids:  # two live processes, children of serve, each accepting on the one listening socket
        assert parent_of(pid) == served.proc.pid
        assert holds_socket(pid, inode)

    with httpx.Client(base_url=f"http://127.0.0.1:{served.port}", timeout=30) as http:
        r = http.post("/events", json=seed())  # wait=true: applied in the request, by whichever process took it
        assert r.status_code == 200 and r.json()["accepted"] == len(seed())

        r = http.post("/events", params={"wait": "false"}, json=orders(DEPTH + 3))
        assert r.status_code == 202, r.text  # stored, never refused
        body = r.json()
        assert body["accepted"] == DEPTH + 3 and body["applied"] is False
        # No applier runs in these processes (and no `backorder worker`): the events wait in the inbox.
        assert body["backlog"]["behind"] is True
        assert body["backlog"]["inbox_pending"] == DEPTH + 1  # counted only one past the depth
        assert body["backlog"]["inbox_warn_depth"] == DEPTH

        r = http.get("/readyz")
        assert r.status_code == 503  # no worker heartbeats yet: that, not the backlog, makes it unready
        body = r.json()
        assert body["backpressure"] is True
        assert body["checks"]["backlog"]["ok"] is False and body["checks"]["backlog"]["advisory"] is True
        assert "workers behind" in body["checks"]["backlog"]["error"]
        assert not body["checks"]["workers"]["ok"]

        beat(engine, f"{socket.gethostname()}:1:worker", "worker", datetime.now(UTC))  # a worker elsewhere
        r = http.get("/readyz")
        assert r.status_code == 200, r.text  # behind, yet ready: intake must stay in rotation
        assert r.json()["status"] == "ready" and r.json()["backpressure"] is True

        samples = gauges(http.get("/metrics").text)
        assert samples["backorder_inbox_backlog"] == DEPTH + 3
        assert samples["backorder_inbox_backlog_limit"] == DEPTH
        assert samples["backorder_backpressure"] == 1

    with engine.connect() as conn:  # nothing applied them: every one of them is stored and pending
        pending = conn.execute(select(func.count()).select_from(t.inbox).where(t.inbox.c.status == "pending"))
        assert pending.scalar_one() == DEPTH + 3


# -- backpressure in one process -------------------------------------------------------------------

def test_below_the_depth_no_hint_and_no_backpressure(ctx: Context) -> None:
    ctx.settings.intake.backlog_warn_depth = DEPTH
    with TestClient(create_app(ctx, background_applier=False)) as client:
        r = client.post("/events?wait=false", json=orders(DEPTH))
        assert r.status_code == 202 and r.json()["accepted"] == DEPTH
        assert "backlog" not in r.json()
        readyz = client.get("/readyz").json()
        assert readyz["backpressure"] is False
        assert readyz["checks"]["backlog"] == {"ok": True, "advisory": True, "behind": False, "inbox_pending": DEPTH,
                                               "inbox_warn_depth": DEPTH, "outbox_due": 0,
                                               "outbox_warn_depth": ctx.settings.intake.outbox_warn_depth}
        samples = gauges(client.get("/metrics").text)
        assert samples["backorder_backpressure"] == 0 and samples["backorder_inbox_backlog"] == DEPTH


def test_an_outbox_past_its_depth_is_backpressure_too(ctx: Context) -> None:
    ctx.settings.intake.outbox_warn_depth = 2
    now = ctx.now()
    with ctx.engine.begin() as conn:
        conn.execute(t.outbox.insert(), [outbox_row(f"due-{k}", "pending", now, attempts=0, error=None, due_at=now)
                                         for k in range(3)])
    with TestClient(create_app(ctx, background_applier=False)) as client:
        r = client.post("/events?wait=false", json=orders(1))
        assert r.status_code == 202
        assert r.json()["backlog"]["outbox_due"] == 3 and r.json()["backlog"]["inbox_pending"] == 1
        check = client.get("/readyz").json()["checks"]["backlog"]
        assert check["ok"] is False and "more than 2 messages due to be sent" in check["error"]
        assert gauges(client.get("/metrics").text)["backorder_backpressure"] == 1
