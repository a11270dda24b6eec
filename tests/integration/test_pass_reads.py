"""store.pass_reads reads in one statement exactly what its two halves (load_inbound, load_lead_times) read alone."""

from __future__ import annotations

from datetime import date

from sqlalchemy import Engine, insert

from store import tables as t
from store.pass_reads import load_eta_sources, load_inbound, load_lead_times


def _seed(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(insert(t.warehouses), [{"warehouse_id": "W1", "name": "W1"}, {"warehouse_id": "W2", "name": "W2"}])
        conn.execute(insert(t.suppliers), [{"supplier_id": "SUP", "name": "Sup", "lead_time_days": 9},
                                           {"supplier_id": "NOLEAD", "name": "No lead", "lead_time_days": None}])
        conn.execute(insert(t.products), [
            {"sku": "OWN", "name": "own lead time", "supplier_id": "SUP", "lead_time_days": 3},
            {"sku": "SUPPLIER", "name": "supplier's lead time", "supplier_id": "SUP", "lead_time_days": None},
            {"sku": "NONE", "name": "no lead time", "supplier_id": "NOLEAD", "lead_time_days": None},
            {"sku": "ORPHAN", "name": "supplier unknown", "supplier_id": "GONE", "lead_time_days": None},
        ])
        conn.execute(insert(t.purchase_orders), [
            {"po_id": "P1", "supplier_id": "SUP", "warehouse_id": "W1", "expected_at": date(2026, 3, 9),
             "status": "open"},
            {"po_id": "P2", "supplier_id": "SUP", "warehouse_id": "W2", "expected_at": None, "status": "open"},
            {"po_id": "P3", "supplier_id": "SUP", "warehouse_id": "W1", "expected_at": date(2026, 3, 2),
             "status": "closed"},
        ])
        conn.execute(insert(t.po_lines), [
            {"po_id": "P1", "sku": "OWN", "qty": 10, "received": 4},
            {"po_id": "P1", "sku": "SUPPLIER", "qty": 5, "received": 5},  # all in: nothing open
            {"po_id": "P1", "sku": "NOT_A_PRODUCT", "qty": 7, "received": 0},  # po_lines.sku is no foreign key
            {"po_id": "P2", "sku": "OWN", "qty": 2, "received": 0},
            {"po_id": "P3", "sku": "NONE", "qty": 8, "received": 0},  # closed PO
        ])


def test_one_statement_reads_what_the_two_did(engine: Engine) -> None:
    _seed(engine)
    skus = ["OWN", "SUPPLIER", "NONE", "ORPHAN", "NOT_A_PRODUCT", "NO_SUCH_SKU"]
    with engine.connect() as conn:
        inbound, lead_times = load_eta_sources(conn, skus)
        assert sorted(inbound, key=lambda p: (p.po_id, p.sku)) == sorted(
            load_inbound(conn, skus), key=lambda p: (p.po_id, p.sku))
        assert lead_times == load_lead_times(conn, skus)
        # What that is, spelled out: open quantities of open POs, dated or not; lead times of known SKUs only.
        assert {(p.po_id, p.sku, p.warehouse_id, p.expected_at, p.qty_open) for p in inbound} == {
            ("P1", "OWN", "W1", date(2026, 3, 9), 6), ("P1", "NOT_A_PRODUCT", "W1", date(2026, 3, 9), 7),
            ("P2", "OWN", "W2", None, 2)}
        assert lead_times == {"OWN": 3, "SUPPLIER": 9, "NONE": None, "ORPHAN": None}
        assert load_eta_sources(conn, []) == ([], {})
