"""Seeded random faults for the fake providers, and the rate a fake saw.

    plan = FaultPlan()
    plan.set(0.3, ["500", "429", "slow", "reset"], seed=7, slow_seconds=1.0, retry_after="1")
    mode = plan.draw()          # "ok", or one of the modes for 30% of the draws, the same sequence per seed
    max_in_window(arrivals, 0.9)   # the most requests any 0.9 s saw

Modes every fake that takes a plan understands: "500" (the provider's server error), "429" (rate limited,
with Retry-After), "slow" (the normal answer, but only after `slow_seconds`: the provider did the work, the
client gave up waiting) and "reset" (the connection closed with an RST, no answer).
"""

from __future__ import annotations

import contextlib
import random
import socket
import struct
import threading
from collections.abc import Iterable, Sequence

from aiohttp import web

FAULT_MODES = ("500", "429", "slow", "reset")


class FaultPlan:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.fraction = 0.0
        self.modes: tuple[str, ...] = ()
        self.slow_seconds = 2.0
        self.retry_after = "1"
        self._rng = random.Random(0)

    def set(self, fraction: float, modes: Sequence[str] = FAULT_MODES, *, seed: int = 0,
            slow_seconds: float | None = None, retry_after: str | None = None) -> None:
        unknown = [m for m in modes if m not in FAULT_MODES]
        if unknown or not 0.0 <= fraction <= 1.0:
            raise ValueError(f"fraction in [0, 1] and modes among {FAULT_MODES}, not {fraction}, {unknown}")
        with self._lock:
            self.fraction, self.modes, self._rng = fraction, tuple(modes), random.Random(seed)
            if slow_seconds is not None:
                self.slow_seconds = slow_seconds
            if retry_after is not None:
                self.retry_after = retry_after

    def draw(self) -> str:
        with self._lock:
            if self.fraction > 0 and self.modes and self._rng.random() < self.fraction:
                return self._rng.choice(self.modes)
            return "ok"


def abort_with_rst(request: web.Request) -> None:
    """Close the request's connection with an RST: the client sees a reset, not an answer."""
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        # Linger 0 turns close() into an RST instead of an orderly FIN.
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


def max_in_window(arrivals: Iterable[float], window: float = 1.0) -> int:
    """The most arrivals (monotonic seconds) inside any half-open window [t, t + window)."""
    times = sorted(arrivals)
    best, start = 0, 0
    for end, t in enumerate(times):
        while times[start] <= t - window:
            start += 1
        best = max(best, end - start + 1)
    return best
