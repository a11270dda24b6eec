"""What an allocation pass reads to project ETAs, in one statement built once.

The open inbound PO lines and the lead times of a pass's SKUs are one UNION ALL of two halves, built at
import with an expanding parameter, so a pass pays neither a second round trip nor statement construction.
Each half also runs alone (load_inbound, load_lead_times) for readers that need only one. The PO half does
not go through products (po_lines.sku is no foreign key), and the order of PO rows never mattered
(project_etas sorts them).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

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
    return _collect(conn.execute(ETA_SOURCES, {"skus": sorted(set(skus))}).tuples())


def load_inbound(conn: Connection, skus: Iterable[str]) -> list[InboundPO]:
    """The open inbound PO lines of `skus` alone (a reader that needs no lead times)."""
    return _collect(conn.execute(_INBOUND, {"skus": sorted(set(skus))}).tuples())[0]


def load_lead_times(conn: Connection, skus: Iterable[str]) -> dict[str, int | None]:
    """Each known SKU's lead time alone."""
    return _collect(conn.execute(_LEAD, {"skus": sorted(set(skus))}).tuples())[1]


def _collect(rows: Iterable[tuple[Any, ...]]) -> tuple[list[InboundPO], dict[str, int | None]]:
    inbound: list[InboundPO] = []
    lead_times: dict[str, int | None] = {}
    for kind, sku, po_id, warehouse_id, expected_at, qty_open, lead, supplier_lead in rows:
        if kind == "po":
            inbound.append(InboundPO(po_id=po_id, sku=sku, warehouse_id=warehouse_id, expected_at=expected_at,
                                     qty_open=qty_open))
        else:
            lead_times[sku] = lead if lead is not None else supplier_lead
    return inbound, lead_times
