"""In-process Prometheus counters and histograms, counted where the work happens.

The metric objects are made once per process and belong to no registry: each FastAPI app registers
them in a CollectorRegistry of its own (bot/observability.py), so tests can build many apps.
Figures that live in the database (messages, queues, backlog) are not here: they are read at scrape
time (services/store_metrics.py), so they are right whichever process did the work.

A count about a transaction's work (an event applied, units allocated) is taken only when that
transaction commits (`on_commit`): a unit of work rolled back and retried, or an event that ends
ignored after its writes were undone, is counted once, for what it finally did.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter as Tally
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics
from sqlalchemy import Connection, Engine, event

log = logging.getLogger(__name__)

# `*_created` timestamps double every series and no dashboard we know of reads them.
disable_created_metrics()

# Applying one event takes about a millisecond; a big ship-complete order or a slow store, seconds.
APPLY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

EVENTS = Counter("backorder_events", "Canonical events by type and outcome: accepted or duplicate when stored, "
                 "then applied, ignored (stale) or dead (parked as a dead letter)",
                 ["type", "outcome"], registry=None)
APPLY_SECONDS = Histogram("backorder_event_apply_seconds", "Time to apply one inbox event, to its commit",
                          ["type"], buckets=APPLY_BUCKETS, registry=None)
UNITS_ALLOCATED = Counter("backorder_units_allocated", "Units allocated to waiting order lines, by warehouse",
                          ["warehouse"], registry=None)

IN_PROCESS = (EVENTS, APPLY_SECONDS, UNITS_ALLOCATED)


def register(registry: CollectorRegistry) -> None:
    for metric in IN_PROCESS:
        registry.register(metric)


def events_stored(events: Sequence[dict[str, Any]], outcomes: Sequence[str]) -> None:
    """Count POST /events (or an import): each event accepted or duplicate, by its type."""
    for tally_key, n in Tally((ev["type"], outcome) for ev, outcome in zip(events, outcomes, strict=True)).items():
        EVENTS.labels(*tally_key).inc(n)


def event_done(event_type: str, outcome: str, seconds: float) -> None:
    EVENTS.labels(event_type, outcome).inc()
    APPLY_SECONDS.labels(event_type).observe(seconds)


def allocations_saved(conn: Connection, loaded: Any) -> None:
    """Count the units an allocation pass added to each warehouse's allocations, when it commits.

    `loaded` is store.allocation_io.Loaded after the pass: `before` holds each line's allocations as
    loaded (its sixth field). Units released or shipped are not allocations, so only growth counts.
    """
    added: Tally[str] = Tally()
    for ln in loaded.lines:
        before = loaded.before[ln.line_id][5]
        for wh, qty in ln.allocations.items():
            if qty > before.get(wh, 0):
                added[wh] += qty - before.get(wh, 0)
    _count_units(conn, added)


def moves_saved(conn: Connection, moves: Iterable[Any]) -> None:
    """The batch run's count: each move (allocation.result) gave `qty` units of one warehouse to a line."""
    added: Tally[str] = Tally()
    for mv in moves:
        added[mv.warehouse_id] += mv.qty
    _count_units(conn, added)


def _count_units(conn: Connection, added: Mapping[str, int]) -> None:
    if added:
        on_commit(conn, lambda: [UNITS_ALLOCATED.labels(wh).inc(n) for wh, n in added.items() if n > 0])


# -- after commit ----------------------------------------------------------------------------------

_PENDING = "backorder.metrics.on_commit"
_lock = threading.Lock()


def on_commit(conn: Connection, fn: Callable[[], object]) -> None:
    """Run `fn` when the connection's current transaction commits; forget it if it rolls back."""
    _listen(conn.engine)
    conn.info.setdefault(_PENDING, []).append(fn)


def _listen(engine: Engine) -> None:
    # Engine events reach connections made before the listener was added, so lazily is fine.
    if event.contains(engine, "commit", _committed):
        return
    with _lock:
        if not event.contains(engine, "commit", _committed):
            event.listen(engine, "rollback", _rolled_back)
            # A savepoint rolled back may have undone some of the counted work: count none of it
            # rather than too much (no path of ours counts inside one today).
            event.listen(engine, "rollback_savepoint", _rolled_back)
            event.listen(engine, "commit", _committed)


def _committed(conn: Connection) -> None:
    # The "commit" event comes just before the driver's commit; a commit that then fails is rare
    # enough (the connection is gone) that a count too many is the accepted price.
    for fn in conn.info.pop(_PENDING, ()):
        try:
            fn()
        except Exception:  # a count must never stop a commit
            log.exception("counting a committed transaction's work failed")


def _rolled_back(conn: Connection, *_args: object) -> None:
    if conn.invalidated:  # its connection is lost: `info` would raise over the real error (store/db.py)
        return
    conn.info.pop(_PENDING, None)
