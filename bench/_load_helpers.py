"""Plumbing for bench/load.py: the API-only process, an open-loop client timed from the schedule, the commit."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench._notify_helpers import Proc, percentile

ROOT = Path(__file__).resolve().parent.parent
PERCENTILES = (50, 90, 99, 99.9, 100)


class ScriptProc(Proc):
    """A `python ARGS...` child (Proc runs `python -m backorder ARGS`), with Proc's stop, tail and checks."""

    def start(self) -> ScriptProc:
        with self.log.open("wb") as fh:
            self.proc = subprocess.Popen([sys.executable, *self.args], cwd=ROOT, env=self.env,
                                         stdout=subprocess.DEVNULL, stderr=fh)
        return self


def commit() -> str:
    """The checked-out commit, read from .git's files (no git command); "?" outside a checkout."""
    git = ROOT / ".git"
    try:
        head = (git / "HEAD").read_text().strip()
        if not head.startswith("ref: "):
            return head[:12]
        ref = head.removeprefix("ref: ")
        loose = git / ref
        if loose.exists():
            return f"{loose.read_text().strip()[:12]} ({ref.rsplit('/', 1)[-1]})"
        for line in (git / "packed-refs").read_text().splitlines():
            if line.endswith(" " + ref):
                return f"{line.split()[0][:12]} ({ref.rsplit('/', 1)[-1]})"
    except OSError:
        pass
    return "?"


async def open_loop(url: str, bodies: Sequence[bytes], rate: float, timeout: float,
                    expect_status: int) -> dict[str, Any]:
    """POST `bodies` on a fixed schedule (request k at start + k / rate) whatever the answers do.

    A request's latency is its answer's time minus its SCHEDULED send time, so a stalled server (or a
    client that fell behind its schedule) shows in the figures instead of delaying the next sends
    (no coordinated omission). A request that fails or times out is an error, not a latency.
    """
    import aiohttp

    n = len(bodies)
    scheduled = [0.0] * n
    sent = [0.0] * n
    done = [0.0] * n
    status: list[str] = [""] * n
    headers = {"Content-Type": "application/json"}
    connector = aiohttp.TCPConnector(limit=2000)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=timeout)) as session:

        async def send(k: int) -> None:
            sent[k] = time.monotonic()
            try:
                async with session.post(url, data=bodies[k], headers=headers) as resp:
                    raw = await resp.read()
                    ok = resp.status == expect_status and json.loads(raw).get("accepted") is not None
                    status[k] = "ok" if ok else f"HTTP {resp.status}"
            except Exception as exc:  # an open-loop client records failures and goes on
                status[k] = type(exc).__name__
            done[k] = time.monotonic()

        tasks = []
        start = time.monotonic() + 0.05
        for k in range(n):
            scheduled[k] = start + k / rate
            delay = scheduled[k] - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(send(k)))
        await asyncio.gather(*tasks)
    return summarise(scheduled, sent, done, status)


def summarise(scheduled: Sequence[float], sent: Sequence[float], done: Sequence[float],
              status: Sequence[str]) -> dict[str, Any]:
    ok = [k for k, s in enumerate(status) if s == "ok"]
    lat = sorted(done[k] - scheduled[k] for k in ok)
    errors: dict[str, int] = defaultdict(int)
    for s in status:
        if s != "ok":
            errors[s] += 1
    span = (max(done) - scheduled[0]) if done else 0.0
    send_span = (sent[-1] - sent[0]) if len(sent) > 1 else 0.0
    return {
        "requests": len(status), "ok": len(ok), "errors": dict(errors),
        "lat": {str(p): percentile(lat, p) for p in PERCENTILES},
        "sent_rate": (len(sent) - 1) / send_span if send_span > 0 else 0.0,
        "achieved_rate": len(ok) / span if span > 0 else 0.0,  # answered OK per second, first send to last answer
        "send_lag_max": max((s - c for s, c in zip(sent, scheduled, strict=True)), default=0.0),
        "first_scheduled": scheduled[0] if scheduled else 0.0, "last_done": max(done) if done else 0.0,
    }


def goal_word(met: bool) -> str:
    return "**met**" if met else "**missed**"
