"""A background thread that drains the inbox when kicked (for POST /events?wait=false)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from services.context import Context
from services.inbox import drain

log = logging.getLogger(__name__)


class Applier:
    def __init__(self, ctx: Context, idle_poll_s: float = 5.0,
                 on_applied: Callable[[], None] | None = None) -> None:
        self._ctx = ctx
        self._on_applied = on_applied
        self._kick = threading.Event()
        self._stop = threading.Event()
        self._idle_poll_s = idle_poll_s
        self._thread = threading.Thread(target=self._run, name="inbox-applier", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def kick(self) -> None:
        self._kick.set()

    def stop(self) -> None:
        self._stop.set()
        self._kick.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        while not self._stop.is_set():
            # Also wakes now and then, so events stored by other processes get applied too.
            self._kick.wait(self._idle_poll_s)
            self._kick.clear()
            try:
                if drain(self._ctx, stop=self._stop.is_set) and self._on_applied is not None:
                    self._on_applied()  # new outbox rows may be due: no need to wait for the next poll
            except Exception:  # keep the thread alive; the events stay pending and are retried
                log.exception("inbox drain failed")
