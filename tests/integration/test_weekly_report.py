"""The weekly backorder report's figures against a hand-built scenario (tests/report_scenario.py), its four
formats, the CLI, and the chart endpoint. Every test runs on SQLite and on PostgreSQL (the `ctx` fixture)."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import insert, select
from typer.testing import CliRunner

from backorder.cli import app as cli
from backorder.config import load_settings
from bot.api import create_app
from reporting import formats
from reporting.pdf import LINES_PER_PAGE, UNDER_CHART, page_count, plain_lines
from services import weekly_report
from services.context import Context
from store import tables as t
from tests.report_scenario import EXPECTED, REPORT_AT, Scenario


@pytest.fixture
def figures(ctx: Context) -> dict[str, Any]:
    Scenario(ctx).run()
    return weekly_report.build(ctx)


def test_the_week_is_the_last_complete_iso_week_in_the_configured_zone() -> None:
    monday_morning = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    p = weekly_report.period(None, monday_morning, "UTC", 8)
    assert (p.label, p.start, p.end) == ("2026-W09", datetime(2026, 2, 23, tzinfo=UTC),
                                         datetime(2026, 3, 2, tzinfo=UTC))
    assert p.labels[0] == "2026-W02" and len(p.bounds) == 9
    # Still Sunday in Los Angeles: the last complete week there is W08, and it starts at local midnight.
    early = datetime(2026, 3, 2, 5, 0, tzinfo=UTC)
    p = weekly_report.period(None, early, "America/Los_Angeles", 2)
    assert p.label == "2026-W08" and p.start == datetime(2026, 2, 16, 8, 0, tzinfo=UTC)
    assert weekly_report.period("2026-W01", early, "UTC", 1).start == datetime(2025, 12, 29, tzinfo=UTC)
    with pytest.raises(ValueError, match="expected an ISO week"):
        weekly_report.period("2026-9", early, "UTC", 1)
    with pytest.raises(ValueError, match="has no week 53"):
        weekly_report.period("2025-W53", early, "UTC", 1)


def test_figures_match_the_scenario(ctx: Context, figures: dict[str, Any]) -> None:
    assert (figures["week"], figures["first_day"], figures["last_day"]) == ("2026-W09", "2026-02-23", "2026-03-01")
    assert figures == weekly_report.build(ctx, "2026-W09")
    this, last = figures["trend"][-1], figures["trend"][-2]
    assert {k: this[k] for k in EXPECTED["this_week"]} == EXPECTED["this_week"]
    assert {k: last[k] for k in EXPECTED["last_week"]} == EXPECTED["last_week"]
    assert all(w["opened"] == 0 for w in figures["trend"][:-2])
    assert [(r["key"], r["late_lines"], r["days_late"]) for r in figures["top_skus"]] == EXPECTED["top_skus"]
    assert [(r["key"], r["late_lines"], r["days_late"]) for r in figures["top_suppliers"]] == EXPECTED["top_suppliers"]
    assert figures["top_suppliers"][0]["name"] == "Acme"
    cycle = figures["cycle_times"]
    for key, want in (("backordered_to_allocated_h", "to_allocated"), ("allocated_to_shipped_h", "to_shipped"),
                      ("backordered_to_shipped_h", "backordered_to_shipped")):
        assert {k: cycle[key][k] for k in EXPECTED[want]} == EXPECTED[want], key
    s2r = figures["shortage_to_request"]
    assert (s2r["skus_short"], s2r["with_request"], s2r["hours"]["median"]) == tuple(EXPECTED["shortage"].values())
    split = figures["split_shipments"]
    assert (split["lines_shipped"], split["split"]) == tuple(EXPECTED["split"].values())
    assert split["rate"] == pytest.approx(1 / 3, abs=1e-4)
    touches = figures["touches"]
    assert touches["backorders"] == 3 and touches["manual_actions"] == EXPECTED["manual_actions"]
    assert touches["messages"] == _messages_about(ctx, {"O2": "B", "O3": "B", "O5": "B"})
    assert touches["per_backorder"] == round((touches["messages"] + 1) / 3, 2)
    lead = {r["supplier"]: r for r in figures["supplier_lead_times"]}
    for sid, want in EXPECTED["suppliers"].items():
        assert {k: lead[sid][k] for k in want} == want, sid
    assert [(r["customer"], r["backorders"], r["value_waiting"]) for r in figures["customers"]] == EXPECTED["customers"]
    assert figures["customers"][0]["longest_wait_days"] == 9.0
    assert figures["revenue_at_risk"] == EXPECTED["revenue_at_risk"] and figures["open"]["lines"] == 1
    assert [b["lines"] for b in figures["aging"]] == [0, 1, 0, 0, 0]  # O3 waits since Feb 23: 3-7 days


def _messages_about(ctx: Context, lines: dict[str, str]) -> int:
    """Outbox rows about these orders' backordered SKU (or the whole order) that went or will go out."""
    o = t.outbox
    with ctx.engine.connect() as conn:
        rows = conn.execute(select(o.c.order_id, o.c.sku, o.c.status).where(o.c.order_id.in_(list(lines)))).all()
    return sum(1 for r in rows if r.sku in (None, lines[r.order_id]) and r.status not in ("cancelled", "dead",
                                                                                           "digested"))


def test_the_week_before_has_its_own_figures(ctx: Context, figures: dict[str, Any]) -> None:
    w08 = weekly_report.build(ctx, "2026-W08")
    assert w08["trend"][-1]["opened"] == 1 and w08["trend"][-1]["week"] == "2026-W08"
    # A ran short on Feb 16 and P1 was placed a day later.
    assert w08["shortage_to_request"]["skus_short"] == 1 and w08["shortage_to_request"]["hours"]["median"] == 24.0
    assert w08["cycle_times"]["backordered_to_allocated_h"]["count"] == 0


def test_each_format_renders(figures: dict[str, Any], tmp_path: Path) -> None:
    md = formats.markdown(figures)
    for heading in ("# Weekly backorder report 2026-W09", "## Opened vs resolved", "## Aging", "## Top SKUs by delay",
                    "## Top suppliers by delay", "## Cycle times", "## Shortage to purchase request",
                    "## Split shipments", "## Touches per backorder", "## Supplier lead-time performance",
                    "## Customers most affected"):
        assert heading in md, heading
    assert "| A | Anvil | 1 | 5 | 6.4 |" in md
    assert r"Depot \<Two\>" in md  # a name from the store cannot become markup

    rows = list(csv.reader(io.StringIO(formats.csv_text(figures))))
    sections = {r[1]: i for i, r in enumerate(rows) if r[:1] == ["section"]}
    assert list(sections) == ["summary", "trend", "aging", "top_skus", "top_suppliers", "cycle_times",
                              "shortage_to_request", "split_shipments", "touches", "supplier_lead_times", "customers"]
    trend_head = rows[sections["trend"] + 1]
    last_week = rows[sections["trend"] + 1 + len(figures["trend"])]
    assert dict(zip(trend_head, last_week, strict=True))["opened"] == "3"
    skus = rows[sections["top_skus"] + 1: sections["top_suppliers"] - 1]
    assert skus[0][:2] == ["key", "name"] and skus[1][0] == "A"

    html = formats.html(figures)
    assert html.count('<img src="data:image/png;base64,') == 3
    assert "Depot &lt;Two&gt;" in html and "<Two>" not in html

    pdf = formats.pdf(figures)
    assert pdf.startswith(b"%PDF-") and pdf.rstrip().endswith(b"%%EOF")
    more_pages = -(-(len(plain_lines(md)) - UNDER_CHART) // LINES_PER_PAGE)
    assert more_pages >= 1 and page_count(pdf) == 2 + more_pages  # cover, top SKUs over the text's start, the rest
    assert len(pdf) > 20_000


def test_cli_prints_md_and_csv_and_writes_pdf_and_html(ctx: Context, figures: dict[str, Any], tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BACKORDER_DATABASE_URL", ctx.settings.database_url)
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    md = runner.invoke(cli, ["report", "weekly", "--week", "2026-W09"])
    assert md.exit_code == 0, md.output
    assert md.stdout.startswith("# Weekly backorder report 2026-W09") and "| A | Anvil |" in md.stdout
    got = runner.invoke(cli, ["report", "weekly", "--week", "2026-W09", "--format", "csv"])
    assert got.exit_code == 0 and got.stdout.startswith("section,summary\n")
    pdf = runner.invoke(cli, ["report", "weekly", "--week", "2026-W09", "--format", "pdf"])
    assert pdf.exit_code == 0, pdf.output
    written = tmp_path / "backorder-report-2026-W09.pdf"
    assert written.read_bytes().startswith(b"%PDF") and str(written.name) in pdf.stderr
    out = tmp_path / "r" / "week.html"
    out.parent.mkdir()
    html = runner.invoke(cli, ["report", "weekly", "--week", "2026-W09", "--format", "html", "--out", str(out)])
    assert html.exit_code == 0 and out.read_text().startswith("<!doctype html>")
    bad = runner.invoke(cli, ["report", "weekly", "--week", "2026-09"])
    assert bad.exit_code == 2 and "ISO week" in bad.output
    bad = runner.invoke(cli, ["report", "weekly", "--format", "docx"])
    assert bad.exit_code == 2 and "docx" in bad.output


def test_a_chart_is_served_to_the_token_or_a_signed_link(ctx: Context) -> None:
    settings = load_settings(database_url=ctx.settings.database_url, api_token="tok",
                             links={"public_base_url": "https://bot.example.com", "secret": "s3cret"})
    made = Context(engine=ctx.engine, settings=settings, clock=ctx.clock)
    figures = weekly_report.build(made, "2026-W09")
    with ctx.engine.begin() as conn:
        report_id = conn.execute(insert(t.reports).values(
            kind="weekly", period_start=datetime.fromisoformat(figures["start"]),
            period_end=datetime.fromisoformat(figures["end"]), figures=figures, created_at=REPORT_AT,
        ).returning(t.reports.c.id)).scalar_one()
    client = TestClient(create_app(made, background_applier=False))
    assert client.get(f"/reports/{report_id}/chart.png").status_code == 401
    sig = weekly_report.chart_signature("s3cret", report_id, "trend")
    r = client.get(f"/reports/{report_id}/chart.png", params={"chart": "trend", "sig": sig})
    assert r.status_code == 200 and r.headers["content-type"] == "image/png" and r.content[:8] == b"\x89PNG\r\n\x1a\n"
    assert client.get(f"/reports/{report_id}/chart.png", params={"chart": "aging", "sig": sig}).status_code == 401
    auth = {"Authorization": "Bearer tok"}
    assert client.get(f"/reports/{report_id}/chart.png?chart=aging", headers=auth).status_code == 200
    assert client.get("/reports", headers=auth).json()[0]["week"] == "2026-W09"
    assert client.get(f"/reports/{report_id}", headers=auth).json()["figures"]["week"] == "2026-W09"
    assert client.get(f"/reports/{report_id + 1}", headers=auth).status_code == 404
    assert client.get("/reports").status_code == 401
