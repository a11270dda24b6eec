"""What an allocation pass reads to project ETAs, in one statement built once.

The open inbound PO lines and the lead times of a pass's SKUs were two statements each built anew per
pass (store.allocation_io.load_inbound, load_lead_times); here they are one UNION ALL, built at import with
an expanding parameter, so a pass pays neither the second round trip nor the statement construction.
The rows are exactly those of the two reads: the PO half does not go through products (po_lines.sku is
no foreign key), and the order of PO rows never mattered (project_etas sorts them).
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Connection, Date, Integer, String, bindparam, cast, literal_column, null, select, union_all

from allocation.model import InboundPO
from store import tables as t

_po, _pl, _p, _s = t.purchase_orders, t.po_lines, t.products, t.suppliers
_INBOUND = select(
    literal_column("'po'", String).label("kind"), _pl.c.sku, _pl.c.po_id, _po.c.warehouse_id, _po.c.expected_at,
    (_pl.c.qty - _pl.c.received).label("qty_open"), cast(null(), Integer).label("lead_days"),
    cast(null(), Integer).label("supplier_lead"),
).join(_po, _po.c.po_id == _pl.c.po_id).where(
    _pl.c.sku.in_(bindparam("skus", expanding=True)), _po.c.status == "open", _pl.c.qty > _pl.c.received)
_LEAD = select(
    literal_column("'lead'", String).label("kind"), _p.c.sku, cast(null(), String), cast(null(), String),
    cast(null(), Date), cast(null(), Integer), _p.c.lead_time_days, _s.c.lead_time_days,
).outerjoin(_s, _s.c.supplier_id == _p.c.supplier_id).where(_p.c.sku.in_(bindparam("skus", expanding=True)))
ETA_SOURCES = union_all(_INBOUND, _LEAD)


def load_eta_sources(conn: Connection, skus: Iterable[str]) -> tuple[list[InboundPO], dict[str, int | None]]:
    """The open inbound PO lines of `skus`, and each known SKU's lead time (its own, else its supplier's)."""
    inbound: list[InboundPO] = []
    lead_times: dict[str, int | None] = {}
    for kind, sku, po_id, warehouse_id, expected_at, qty_open, lead, supplier_lead in conn.execute(
            ETA_SOURCES, {"skus": sorted(set(skus))}).tuples():
        if kind == "po":
            inbound.append(InboundPO(po_id=po_id, sku=sku, warehouse_id=warehouse_id, expected_at=expected_at,
                                     qty_open=qty_open))
        else:
            lead_times[sku] = lead if lead is not None else supplier_lead
    return inbound, lead_times
