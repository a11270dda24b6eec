"""Group commit for POST /events: the bodies of requests that arrive together are stored in one transaction.

A request's answer still comes only after its events are committed, so nothing acknowledged can be lost;
what is shared is the transaction. At 500 requests/s one transaction each cost a pool checkout (with its
pre-ping), BEGIN, INSERT and COMMIT per request, and the commit's WAL flush wait held a thread and a pooled
connection each: under a burst the requests queued for connections. One writer thread on one held
connection stores whatever has queued meanwhile, so the busier the API, the more requests share a commit.

Outcomes are those of the requests stored one by one in arrival order (a repeat of an event another request
in the same group carries is a duplicate, as it would be a moment later). A group whose transaction fails is
stored again request by request, so one request's bad value fails that request only. A bulk request (more than
ALONE_FROM events) is stored in a transaction of its own instead, beside the writer: queued in a group, it
would hold every small request behind it for the length of its insert.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import queue
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from services import metrics
from services.context import Context
from services.inbox import store_events, store_events_in
from store.held import HeldConnection

log = logging.getLogger(__name__)

Stored = tuple[list[str], list[int]]  # outcomes in input order, inbox ids of the accepted events (ascending)
ALONE_FROM = 500  # events in one request from which it is stored on its own (~20-50 ms of insert)
MAX_GROUP_EVENTS = 2_000  # a group stays one short transaction however many requests queue up
IDLE_RELEASE_S = 1.0  # quiet this long: the pool gets the connection back
IDLE_EXIT_S = 10.0  # quiet this long: the thread ends (the next request starts it again)


@dataclass(slots=True)
class _Request:
    events: Sequence[dict[str, Any]]
    done: concurrent.futures.Future[Stored] = field(default_factory=concurrent.futures.Future)


class InboxWriter:
    """Stores event envelopes for many concurrent callers, a group of them per transaction."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._db = HeldConnection(ctx.engine)
        self._queue: queue.SimpleQueue[_Request | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    async def store(self, events: Sequence[dict[str, Any]]) -> Stored:
        """Store validated envelopes: in the next group, or alone if they are a bulk request."""
        if len(events) > ALONE_FROM:
            return await asyncio.to_thread(store_events, self.ctx, events)
        return await asyncio.wrap_future(self.submit(events))

    def submit(self, events: Sequence[dict[str, Any]]) -> concurrent.futures.Future[Stored]:
        """Queue validated envelopes; the future resolves to (outcomes, inbox ids) once they are committed."""
        request = _Request(events)
        with self._lock:
            self._queue.put(request)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="inbox-writer", daemon=True)
                self._thread.start()
        return request.done

    def close(self) -> None:
        """Store what is queued, then stop the thread and give the connection back."""
        with self._lock:
            thread = self._thread
            if thread is not None:
                self._queue.put(None)
        if thread is not None:
            thread.join()
        self._db.release()

    def _run(self) -> None:
        idle = 0.0
        while True:
            try:
                first = self._queue.get(timeout=IDLE_RELEASE_S)
            except queue.Empty:
                self._db.release()
                idle += IDLE_RELEASE_S
                with self._lock:
                    if idle >= IDLE_EXIT_S and self._queue.empty():
                        self._thread = None
                        return
                continue
            idle = 0.0
            group, stop = self._group(first)
            try:
                self._write(group)
            except Exception as exc:  # a bug of ours must leave no request unanswered, nor the writer dead
                log.exception("inbox writer failed on a group of %d request(s)", len(group))
                for request in group:
                    if not request.done.done():
                        request.done.set_exception(exc)
            if stop:
                with self._lock:
                    self._thread = None
                return

    def _group(self, first: _Request | None) -> tuple[list[_Request], bool]:
        """`first` and whatever else is queued now, up to MAX_GROUP_EVENTS events; and whether close() was asked."""
        group: list[_Request] = []
        size, nxt = 0, first
        while nxt is not None:
            # A request whose caller has gone (cancelled) is not stored: no one was told it was.
            if nxt.done.set_running_or_notify_cancel():
                group.append(nxt)
                size += len(nxt.events)
            if size >= MAX_GROUP_EVENTS:
                return group, False
            try:
                nxt = self._queue.get_nowait()
            except queue.Empty:
                return group, False
        return group, True

    def _write(self, group: list[_Request]) -> None:
        if not group:
            return
        events = [ev for r in group for ev in r.events]
        try:
            # Not run again on a lost connection: the requests answer 503 and their senders retry (the connection
            # is given back after a second of quiet, so a stale one is rare).
            with self._db.transaction() as conn:
                outcomes, ids = store_events_in(conn, events, self.ctx.now())
        except Exception as exc:  # every request of the group gets an answer, whatever went wrong
            if len(group) > 1:
                for request in group:
                    self._write([request])
            else:
                group[0].done.set_exception(exc)
            return
        metrics.events_stored(events, outcomes)
        start = 0
        for r in group:
            end = start + len(r.events)
            r.done.set_result((outcomes[start:end], sorted(i for i in ids[start:end] if i is not None)))
            start = end
