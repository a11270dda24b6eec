"""Live refresh: one shared snapshot per process, recomputed only when the store changed.

Every open page holds a server-sent-events stream. Each stream wakes every `[dashboard] refresh_seconds`
and asks the Hub for the current snapshot; the Hub runs the cheap fingerprint query (services.ops_queues)
at most once per interval for all streams together, recomputes the snapshot only when the fingerprint
moved (or FULL_REFRESH_SECONDS passed: a message turning dead moves no fingerprint), and bumps its
sequence number only when the figures themselves changed. A stream sends an event when the sequence
moved past the one its page shows.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import Request
from fastapi.concurrency import run_in_threadpool

from services import ops_figures, ops_queues
from services.context import Context

FULL_REFRESH_SECONDS = 60.0
KEEPALIVE_SECONDS = 15.0


class Hub:
    def __init__(self, ctx: Context, render: Callable[[dict[str, Any]], str]) -> None:
        self.ctx = ctx
        self.render = render
        self._lock = threading.Lock()
        self.seq = 0
        self.snapshot: dict[str, Any] | None = None
        self.html = ""
        self._fingerprint: str | None = None
        self._checked = 0.0
        self._computed = 0.0
        self._figures = ""

    def current(self, force: bool = False) -> tuple[int, dict[str, Any], str]:
        """(sequence, snapshot, rendered figures) as of now, at most one fingerprint query per interval."""
        interval = self.ctx.settings.dashboard.refresh_seconds
        with self._lock:
            now = time.monotonic()
            if self.snapshot is not None and not force and now - self._checked < interval * 0.5:
                return self.seq, self.snapshot, self.html
            self._checked = now
            with self.ctx.engine.connect() as conn:
                fp = ops_queues.fingerprint(conn)
                stale = now - self._computed >= FULL_REFRESH_SECONDS
                if self.snapshot is None or force or fp != self._fingerprint or stale:
                    snap = ops_figures.snapshot(conn, self.ctx.now(), self.ctx.settings)
                    self._fingerprint, self._computed = fp, now
                    figures = json.dumps({k: v for k, v in snap.items() if k != "generated_at"}, sort_keys=True)
                    if figures != self._figures or self.snapshot is None:
                        self._figures = figures
                        self.seq += 1
                        self.snapshot = snap
                        self.html = self.render(snap)
            assert self.snapshot is not None
            return self.seq, self.snapshot, self.html


def event(name: str, data: dict[str, Any]) -> str:
    return f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


async def stream(hub: Hub, request: Request, shown: int) -> AsyncIterator[str]:
    """Server-sent events: `snapshot` {seq, snapshot, html} whenever the figures moved past `shown`."""
    interval = hub.ctx.settings.dashboard.refresh_seconds
    # Tell the browser how long to wait before reconnecting after a dropped connection.
    yield f"retry: {int(max(interval, 1) * 1000)}\n\n"
    quiet = 0.0
    while True:
        seq, snap, html = await run_in_threadpool(hub.current)
        if seq != shown:
            shown = seq
            quiet = 0.0
            yield event("snapshot", {"seq": seq, "snapshot": snap, "html": html})
        elif quiet >= KEEPALIVE_SECONDS:
            quiet = 0.0
            yield ": keep-alive\n\n"  # a comment: lets proxies and the browser see the stream is alive
        await asyncio.sleep(interval)
        quiet += interval
        if await request.is_disconnected():
            return
