"""The `backorder` console script, run as a user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Engine

BIN = [sys.executable, "-m", "backorder"]


def run(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("BACKORDER_")}
    full_env.update(env or {})
    full_env["COLUMNS"] = "160"
    return subprocess.run([*BIN, *args], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=120)


def test_demo_tells_the_story_on_a_fresh_sqlite_file(tmp_path: Path) -> None:
    (tmp_path / "backorder-demo.db").write_text("not a database: the demo must start afresh")
    done = run(["demo"], tmp_path)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    for expected in ("the orders come in", "5 x KTL-200 backordered", "PO-77 arrives", "task #",
                     "incident #", "shipped with DPD (DPD-5521)", "the operations lead looks up",
                     "waiting now: 1 lines, 2 units; revenue at risk 84.00", "Purchase suggestion #"):
        assert expected in out, expected
    assert "draft #1 (delay notice, order 1043, customer C-CAL): approved by sam, edited" in out
    db = {"BACKORDER_DATABASE_URL": "sqlite:///backorder-demo.db"}
    listed = run(["drafts", "list", "--status", "sent", "--json"], tmp_path, db)
    assert listed.returncode == 0, listed.stderr
    sent = json.loads(listed.stdout)
    assert {(d["customer_id"], d["decided_by"], d["decided_via"]) for d in sent} == {("C-CAL", "sam", "demo")}
    assert any(d["edited"] and "P.S." in d["text"] for d in sent)
    stranger = run(["drafts", "approve", str(sent[0]["id"]), "--as", "nobody"], tmp_path, db)
    assert stranger.returncode == 2 and "no staff member 'nobody'" in stranger.stderr
    assert run(["staff", "add", "rev", "--role", "approver"], tmp_path, db).returncode == 0
    late = run(["drafts", "approve", str(sent[0]["id"]), "--as", "rev"], tmp_path, db)
    assert late.returncode == 1 and "already approved by sam at" in " ".join(late.stdout.split())
    week = "{}-W{:02d}".format(*datetime.now(UTC).isocalendar()[:2])  # the demo starts today (UTC)
    report = run(["report", "weekly", "--week", week, "--format", "csv"], tmp_path, db)
    assert report.returncode == 0, report.stderr
    assert "this_week_opened,3" in report.stdout.splitlines(), report.stdout[:400]
    shown = run(["orders", "show", "1044", "--json"], tmp_path,
                {"BACKORDER_DATABASE_URL": "sqlite:///backorder-demo.db"})
    assert shown.returncode == 0, shown.stderr
    order = json.loads(shown.stdout)
    assert order["ship_complete"] is True
    assert [(ln["status"], ln["qty_allocated"]) for ln in order["lines"]] == [("allocated", 2)]


def test_events_import_show_and_dead_letters(tmp_path: Path, engine: Engine, database_url: str) -> None:
    env = {"BACKORDER_DATABASE_URL": database_url}
    events = [
        {"event_id": "w", "type": "warehouse.upserted", "occurred_at": "2026-03-01T09:00:00Z",
         "data": {"warehouse_id": "LDS", "name": "Leeds", "region": "north"}},
        {"event_id": "c", "type": "customer.upserted", "occurred_at": "2026-03-01T09:00:00Z",
         "data": {"customer_id": "C1", "name": "Ada", "region": "north"}},
    ]
    (tmp_path / "events.json").write_text(json.dumps(events))
    done = run(["events", "post", "events.json"], tmp_path, env)
    assert done.returncode == 0, done.stderr
    assert "2 accepted, 0 duplicate" in done.stdout
    assert "1 accepted" not in run(["events", "post", "events.json"], tmp_path, env).stdout

    (tmp_path / "orders.csv").write_text(
        "order_id,customer_id,placed_at,promised_date,rush,ship_complete,line_id,sku,qty,unit_price\n"
        "1042,C1,2026-03-01T10:00:00Z,2026-03-05,false,false,1,KTL-200,3,40\n"
    )
    done = run(["import", "orders", "orders.csv"], tmp_path, env)
    assert done.returncode == 0, done.stderr
    assert "1 parked" in done.stdout  # KTL-200 is not in the catalogue yet
    listed = run(["deadletters", "list"], tmp_path, env)
    assert "unknown SKU KTL-200" in listed.stdout and "120.00" in listed.stdout

    (tmp_path / "products.csv").write_text(
        "sku,name,price,supplier_id,lead_time_days,reorder_point,substitutes,category\n"
        "KTL-200,Blue kettle,40,,7,0,,kettles\n"
    )
    done = run(["import", "products", "products.csv"], tmp_path, env)
    assert done.returncode == 0, done.stderr
    shown = json.loads(run(["orders", "show", "1042", "--json"], tmp_path, env).stdout)
    assert shown["lines"][0]["status"] == "backordered"  # the parked order came back by itself

    done = run(["allocate"], tmp_path, env)
    assert done.returncode == 0, done.stderr
    assert "1 open line(s) over 1 SKU(s)" in " ".join(done.stdout.split())
    done = run(["check-overdue"], tmp_path, env)  # promised 2026-03-05: long past
    assert done.returncode == 0, done.stderr
    assert "1 late line(s) over 1 SKU(s), 120.00 waiting; 1 task(s) and 1 incident(s) opened" in " ".join(
        done.stdout.split())

    (tmp_path / "bad.csv").write_text("sku,warehouse_id,on_hand\nKTL-200,LDS,-4\n")
    done = run(["import", "stock", "bad.csv"], tmp_path, env)
    assert done.returncode == 1
    assert "row 2, column on_hand" in done.stdout and "nothing stored" in done.stdout


def test_bad_configuration_stops_with_the_key(tmp_path: Path) -> None:
    done = run(["db", "upgrade"], tmp_path, {"BACKORDER_ALLOCATION__POLICY": "random"})
    assert done.returncode == 2
    assert "allocation.policy" in done.stdout


def test_chat_answers_from_the_demo_store(tmp_path: Path) -> None:
    assert run(["demo"], tmp_path).returncode == 0
    env = {"BACKORDER_DATABASE_URL": "sqlite:///backorder-demo.db"}
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("BACKORDER_")} | env | {"COLUMNS": "160"}
    done = subprocess.run([*BIN, "chat", "--as", "customer:C-CAL"], cwd=tmp_path, env=full_env, text=True,
                          capture_output=True, input="where is order 1043?\nwhere is order 1041?\n", timeout=120)
    assert done.returncode == 0, done.stderr
    assert "Order 1043:" in done.stdout and "KTL-200" in done.stdout
    assert "can't find order 1041" in done.stdout  # C-BEA's order
    assert run(["chat", "--as", "nobody"], tmp_path, env).returncode == 2


def test_serve_and_worker_refuse_a_webhook_url_inside_the_network_naming_the_field(tmp_path: Path) -> None:
    env = {"BACKORDER_DATABASE_URL": f"sqlite:///{tmp_path / 'b.db'}",
           "BACKORDER_WEBHOOK__URL": "https://169.254.169.254/latest/meta-data"}
    for args in (["serve", "--port", "1"], ["worker", "--once"]):
        done = run(args, tmp_path, env)
        said = " ".join((done.stdout + done.stderr).split())
        assert done.returncode == 2, said
        assert "configuration error: webhook.url: address 169.254.169.254 is link-local" in said, said
        assert "Traceback" not in said
