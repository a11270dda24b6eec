"""Worker heartbeats: each running worker upserts its row in worker_heartbeats every few seconds.

/readyz and the dashboard count a worker as live while its last beat is younger than
`[health] stale_seconds`; a worker that stops cleanly deletes its row, one that dies just goes stale.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, delete, select

from store import tables as t
from store.db import unit_of_work
from store.upsert import dialect_insert

log = logging.getLogger(__name__)


def worker_id(role: str) -> str:
    """host:pid:role, so an operator can tell from the id which machine and process to look at."""
    return f"{socket.gethostname()}:{os.getpid()}:{role}"[:200]


def beat(engine: Engine, worker_id: str, role: str, now: datetime) -> None:
    """Record that `worker_id` is alive at `now` (its first beat also records when it started)."""
    host, _, rest = worker_id.partition(":")
    pid = rest.partition(":")[0]
    row = {"worker_id": worker_id, "role": role, "host": host, "pid": int(pid) if pid.isdigit() else os.getpid(),
           "started_at": now, "beat_at": now}
    with unit_of_work(engine) as conn:
        stmt = dialect_insert(conn, t.worker_heartbeats)
        conn.execute(stmt.on_conflict_do_update(index_elements=["worker_id"],
                                                set_={"beat_at": stmt.excluded.beat_at, "role": stmt.excluded.role}),
                     row)


def forget(engine: Engine, worker_id: str) -> None:
    """A worker stopping cleanly takes its row away, so it is not mistaken for a dead one."""
    with unit_of_work(engine) as conn:
        conn.execute(delete(t.worker_heartbeats).where(t.worker_heartbeats.c.worker_id == worker_id))


def live_workers(conn: Connection, now: datetime, stale_after: timedelta | float) -> list[dict[str, Any]]:
    """Workers whose last beat is younger than `stale_after` (seconds or a timedelta), freshest first."""
    if not isinstance(stale_after, timedelta):
        stale_after = timedelta(seconds=stale_after)
    h = t.worker_heartbeats
    rows = conn.execute(select(h).where(h.c.beat_at > now - stale_after).order_by(h.c.beat_at.desc())).mappings()
    return [{**row, "age_seconds": max((now - row["beat_at"]).total_seconds(), 0.0)} for row in rows]


def last_beat(conn: Connection) -> datetime | None:
    """The freshest beat of any worker, live or not (to say how stale they are)."""
    h = t.worker_heartbeats
    return conn.execute(select(h.c.beat_at).order_by(h.c.beat_at.desc()).limit(1)).scalar()


class Heartbeat:
    """Beats in a thread of its own: the worker's loop may spend minutes in one scheduled job (a nightly
    allocation run), which must not make a healthy worker look dead."""

    def __init__(self, engine: Engine, role: str, every_s: float, clock: Callable[[], datetime]) -> None:
        self.engine = engine
        self.role = role
        self.worker_id = worker_id(role)
        self._every_s = every_s
        self._clock = clock
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-{role}", daemon=True)

    def start(self) -> None:
        self._beat()  # ready as soon as it starts, not one interval later
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        try:
            forget(self.engine, self.worker_id)
        except Exception:  # the store is down: the row goes stale on its own
            log.warning("could not remove heartbeat of %s", self.worker_id, exc_info=True)

    def _beat(self) -> None:
        try:
            beat(self.engine, self.worker_id, self.role, self._clock())
        except Exception:  # the store restarting: beat again next time; /readyz shows the gap meanwhile
            log.warning("heartbeat of %s failed", self.worker_id, exc_info=True)

    def _run(self) -> None:
        while not self._stop.wait(self._every_s):
            self._beat()
