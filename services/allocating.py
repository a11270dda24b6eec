"""One allocation pass over some SKUs inside the caller's unit of work."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable

from sqlalchemy import Connection

from allocation.engine import allocate
from allocation.eta import project_etas
from allocation.model import DomainEvent
from allocation.policy import AllocationPolicy
from allocation.result import AllocationResult
from services import metrics, recording  # a module: recording -> notifications -> substitutions imports us
from services.context import Context
from store import allocation_io as io
from store.pass_reads import load_eta_sources

Prepare = Callable[[io.Loaded, AllocationPolicy], AllocationResult]


def run_pass(
    conn: Connection,
    ctx: Context,
    skus: Iterable[str],
    cause: str,
    *,
    prepare: Prepare | None = None,
    extra_line_pks: Collection[int] = (),
    new_line_pks: Collection[int] = (),
    actor: str = "allocator",
    restock: bool = False,
) -> list[DomainEvent]:
    """Lock the SKUs, apply `prepare` (cancel, ship, release), allocate, project ETAs, write it all.

    Ship-complete orders waiting on these SKUs pull their other SKUs into the pass, so the
    all-or-nothing check sees every line of the order. With a `prepare` step (which may take
    units back) every ship-complete order on these SKUs does, waiting or not: losing units of
    one line must release its other lines too. `restock` says the change may have freed stock
    (a receipt, a count, a cancellation): back-in-stock subscribers of these SKUs are checked.
    """
    skus = set(skus)
    io.lock_skus(conn, skus)
    holding = prepare is not None  # only cancel, ship and release touch lines that hold stock
    loaded = io.load_open(conn, skus, extra_line_pks, holding)
    whole = {ln.order_id for ln in loaded.lines if ln.ship_complete and (ln.waiting or holding)}
    if whole:
        more = _pull_in(conn, skus, whole)
        if more:
            skus |= more
            loaded = io.load_open(conn, skus, extra_line_pks, holding)
    policy = ctx.settings.allocation_policy(loaded.regions)
    result = AllocationResult()
    if prepare is not None:
        result.extend(prepare(loaded, policy))
    result.extend(allocate(loaded.lines, loaded.stocks, policy, {io.line_key(pk) for pk in new_line_pks}))
    events = list(result.events)
    inbound, lead_times = load_eta_sources(conn, skus)
    events += project_etas(loaded.lines, inbound, policy, ctx.today(), lead_times)
    now = ctx.now()
    audit = io.save(conn, loaded, now)
    metrics.allocations_saved(conn, loaded)
    io.write_audit(conn, audit, actor, cause, now)
    recording.record(conn, ctx, events, loaded.public_ids, cause, now, skus if restock else ())
    return events


def _pull_in(conn: Connection, skus: set[str], whole: set[str]) -> set[str]:
    """Lock and return the SKUs outside `skus` that the ship-complete orders `whole` reach.

    Transitively: a pulled-in SKU brings its own waiting ship-complete orders into the pass, and
    their other SKUs must come too, or the engine would judge such an order on part of its lines
    and fill that part alone.
    """
    seen = set(whole)
    pulled: set[str] = set()
    while whole:
        more = io.skus_of_orders(conn, whole) - skus - pulled
        if not more:
            break
        # Already holding `skus`: waiting for more could deadlock with a pass holding those.
        io.lock_skus(conn, more, nowait=True)
        pulled |= more
        # Read after the lock: no order can start waiting on these SKUs behind our back now.
        whole = io.waiting_ship_complete_orders(conn, more) - seen
        seen |= whole
    return pulled
