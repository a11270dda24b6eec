"""Every notice kind renders on every channel and locale, and says what a customer needs to know."""



from __future__ import annotations

import html
import re
from collections.abc import Callable
from datetime import date
from typing import Any

import pytest
from babel.dates import format_date
from jinja2 import FileSystemLoader, StrictUndefined, UndefinedError
from jinja2.sandbox import SandboxedEnvironment

from notifiers.render import (
    CUSTOMER_KINDS,
    INTERNAL_KINDS,
    KINDS,
    LOCALES,
    NOTIFY_DIR,
    SMS_MAX_SEGMENTS,
    TEMPLATE_CHANNELS,
    Rendered,
    environment,
    render_approved,
    render_notice,
    resolve_locale,
    template_names,
)
from notifiers.sms import fold_to_gsm, segments

NO_SOURCE = "no_inbound_po_and_no_lead_time"
WAITING = ("backordered", "partially_allocated")
NO_DATE = {"en": "no date", "es": "sin fecha"}
NO_SOURCE_WORDS = {"en": "no restock", "es": "reposición"}
MORE = {"en": "more", "es": "más"}

LONG_NAMES = [
    "Industrial Stainless Steel Hex Bolt Assortment, 240 pieces",
    "Café Crème Espresso Beans — Single Origin Huehuetenango, 1 kg",
    "Überlänge Schraubendreher-Satz mit Präzisionsbits (32-teilig)",
    "Señal Ñandú: Cinta Aislante Azul de Alta Tensión, 20 m",
    "Nuts & Bolts <M8> Mixed Box",
    "Ergonomic Mesh Office Chair with Adjustable Lumbar Support",
    "Łódź Ceramic Tile Adhesive, Frost Resistant, 25 kg Bag",
    "日本製 精密ドライバーセット",
    "Heavy-Duty Cordless Hammer Drill 18 V with Two Batteries",
    "Organic Cotton Bath Towel Set “Hotel Collection” (6 pieces)",
    "LED Panel 60×60 cm Neutral White 4000 K",
    "Gadget",
]


def customer(name: str = "Ann Lee", locale: str = "en") -> dict[str, Any]:
    return {"id": "C-17", "name": name, "tier": "gold", "locale": locale, "timezone": "America/Mexico_City"}


def item(n: int, status: str = "backordered", eta: str | None = "2026-03-09", reason: str | None = "po:PO-7",
         name: str = "Widget Pro", qty: int = 5, allocated: int = 0, shipped: int = 0,
         previous: str | None = "2026-03-06") -> dict[str, Any]:
    waiting = 0 if status == "cancelled" else qty - allocated
    return {"line_id": f"L{n}", "sku": f"SKU-{n:03d}", "name": name, "qty": qty, "qty_allocated": allocated,
            "qty_shipped": shipped, "waiting": waiting, "status": status, "eta": eta, "eta_reason": reason,
            "previous_eta": previous}


def short_items() -> list[dict[str, Any]]:
    """A partly reserved line with a PO date, and one with no date and no source."""
    return [item(1, "partially_allocated", qty=5, allocated=2),
            item(2, eta=None, reason=NO_SOURCE, name="Gadget", qty=1, previous=None)]


def long_items() -> list[dict[str, Any]]:
    """Twelve lines with long and non-Latin names; every third has no date."""
    rows = []
    for n, name in enumerate(LONG_NAMES, start=1):
        no_date = n % 3 == 0
        rows.append(item(n, eta=None if no_date else f"2026-04-{n:02d}", reason=NO_SOURCE if no_date else
                         "supplier_lead_time", name=name, qty=n + 1, previous=f"2026-03-{n:02d}"))
    return rows


def order(order_id: str = "SO-1001") -> dict[str, Any]:
    return {"id": order_id, "placed_at": "2026-03-01T15:30:00+00:00", "promised_date": "2026-03-05"}


def as_status(items: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    """The line states each kind is sent in."""
    out = []
    for it in items:
        it = dict(it)
        if kind == "allocated":
            it.update(status="allocated", qty_allocated=it["qty"], waiting=0, eta=None, eta_reason=None)
        elif kind == "shipped":
            it.update(status="shipped", qty_allocated=it["qty"], qty_shipped=it["qty"], waiting=0, eta=None,
                      eta_reason=None)
        elif kind == "backorder_cancelled":
            it.update(status="cancelled", waiting=0, eta=None, eta_reason=None)
        out.append(it)
    return out


SHIPPING = {"carrier": "UPS", "tracking": "1Z999AA10123456784", "tracking_url": "https://ups.example/t?n=1Z9&l=en"}
PRODUCT = {"sku": "NB-8", "name": "Nuts & Bolts <M8> Mixed Box", "available": 40}
TASK = {"id": 12, "kind": "expedite_po", "sku": "SKU-001", "title": "Expedite PO-7 for SKU-001",
        "severity": "high", "detail": {"po_id": "PO-7", "waiting_units": 30, "lines": ["L1", "L2"]}}


SUGGESTIONS = {  # reorder suggestions (services/reorder.py)
    "purchase_suggestion": {"id": 14, "kind": "purchase_suggestion", "sku": "SKU-001", "title": "Buy 30 x SKU-001",
                            "severity": None, "detail": {"qty": 30, "supplier_id": "ACME", "warehouse_id": "LDS",
                                                         "expected_at": "2026-03-16", "projected": -4,
                                                         "reorder_point": 21, "lead_time_days": 14,
                                                         "demand_per_day": 0.75}},
    "transfer_suggestion": {"id": 15, "kind": "transfer_suggestion", "sku": "SKU-001", "title": "Move 25 x SKU-001",
                            "severity": None, "detail": {"qty": 25, "from_warehouse_id": "MAN",
                                                         "to_warehouse_id": "LDS",
                                                         "expected_at": "2026-03-04", "projected": -4,
                                                         "reorder_point": 21, "source_reorder_point": 10,
                                                         "lead_time_days": 14, "demand_per_day": 0.75}},
}
OFFER = {"id": 7, "sku": "SKU-001", "name": "Widget Pro", "substitute_sku": "SKU-009", "substitute_name": "Widget Max",
         "qty": 3, "available_on": "2026-03-10", "price_diff_pct": 4.0}
DRAFT = {"id": 31, "kind": "delay_notice", "notice_kind": "backorder_created", "channel": "whatsapp",
         "text": "Hello Ann,\n\nWidget Pro is on backorder until Mar 9, 2026.", "source": "llm",
         "decided_by": "ana", "decided_at": "2026-03-02T10:00:00+00:00", "problems": 0, "fallback_reason": None}


def facts(kind: str, items: list[dict[str, Any]], locale: str = "en",
          name: str = "Ann Lee") -> dict[str, Any]:
    cust = customer(name, locale)
    base = {"customer": cust, "order": order(), "items": as_status(items, kind)}
    if kind == "shipped":
        return {**base, **SHIPPING}
    if kind == "delay_overdue":
        return {**base, "days_late": 4}
    if kind == "back_in_stock":
        return {"customer": cust, "product": PRODUCT}
    if kind == "high_value_backorder":
        return {**base, "value": 4250.5, "threshold": 1000.0}
    if kind in ("procurement_task", "inventory_task", "handoff_task"):
        return {"task": TASK}
    if kind == "task_overdue":  # services/task_escalation.py: the task as reads.task_view shows it, and its lead
        return {"task": {**TASK, "owner_role": "procurement", "owner": None, "taken_at": None,
                         "due_at": "2026-03-03T09:00:00+00:00", "status": "open", "overdue": True},
                "lead": {"staff_id": "lee", "name": "Lee"}}
    if kind in ("purchase_suggestion", "transfer_suggestion"):
        return {"task": SUGGESTIONS[kind]}
    if kind in ("substitution_offer", "substitution_confirmed", "substitution_declined"):
        return {"customer": cust, "order": order(), "items": [], "offer": OFFER}
    if kind == "partial_shipment_offer":
        return base  # its items are the partly reserved lines
    if kind == "partial_shipment_confirmed":
        return {"customer": cust, "order": order(), "items": [], "choice": "ship_now"}
    if kind == "question_reply":
        return {"customer": cust, "order": None, "items": [], "task": {"id": 12}}
    if kind in ("approval_request", "approval_escalation", "approval_outcome"):
        return {"draft": {**DRAFT, "status": "approved" if kind == "approval_outcome" else "pending"},
                "customer": cust, "order": order(), "items": base["items"], "offer": None}
    if kind == "ops_digest":
        top = [{"sku": f"SKU-{n:03d}", "name": nm, "lines": 20 - n, "units": 90 - n, "value": 1234.5 * n}
               for n, nm in enumerate(LONG_NAMES[:8], start=1)]
        return {"date": "2026-03-09", "open_lines": 120, "open_units": 840, "open_value": 25300.0,
                "opened_today": 14, "resolved_today": 9, "oldest_days": 23, "top_skus": top, "tasks_open": 4,
                "incidents_open": 1, "dead_letters": 0, "notifications_dead": 2}
    if kind == "digest":
        entries = [
            {"kind": "backorder_created", "order": order("SO-2002"), "items": items, "product": None},
            {"kind": "shipped", "order": order(), "product": None,
             "items": as_status([item(99, name="Señora Clásica Lamp", qty=3)], "shipped"),
             **SHIPPING},
            {"kind": "eta_changed", "order": order(), "items": items[1:], "product": None},
            {"kind": "delay_overdue", "order": order(), "items": items[:1], "product": None, "days_late": 2},
            {"kind": "back_in_stock", "order": None, "items": [], "product": PRODUCT},
        ]
        return {"customer": cust, "since": "2026-03-08T09:00:00Z", "entries": entries}
    return base


def shown_lines(kind: str, f: dict[str, Any]) -> list[tuple[dict[str, Any], str]]:
    """(item, the kind it is reported under) for every line the notice must show."""
    if kind == "digest":  # grouped by order, orders sorted by id
        entries = sorted((e for e in f["entries"] if e["order"]), key=lambda e: e["order"]["id"])
        return [(it, e["kind"]) for e in entries for it in e["items"]]
    return [(it, kind) for it in f.get("items", [])]


def qty_shown(it: dict[str, Any], kind: str) -> int:
    if kind == "shipped" or it["status"] == "shipped":
        return it["qty_shipped"]
    if it["status"] in WAITING:
        return it["waiting"]
    return it["qty"] - it["qty_shipped"]


def check_dates(text: str, it: dict[str, Any], kind: str, locale: str,
                norm: Callable[[str], str] = str) -> None:
    """A waiting line says its date, or that it has none (and why, when the reason is known)."""
    if it["status"] not in WAITING or kind == "shipped":
        return
    if it["eta"]:
        assert format_date(date.fromisoformat(it["eta"]), format="medium", locale=locale) in text, text
    else:
        assert norm(NO_DATE[locale]) in text, text
        if it["eta_reason"] == NO_SOURCE:
            assert norm(NO_SOURCE_WORDS[locale]) in text, text


def check_long_form(text: str, f: dict[str, Any], kind: str, locale: str, escape: bool = False) -> None:
    for it, k in shown_lines(kind, f):
        name = html.escape(it["name"], quote=False) if escape else it["name"]
        line = next((ln for ln in text.splitlines() if f"{qty_shown(it, k)} × {name}" in ln), None)
        assert line is not None, f"{it['name']} x {qty_shown(it, k)} missing from:\n{text}"
        check_dates(line, it, k, locale)


def check_sms(body: str, f: dict[str, Any], kind: str, locale: str) -> None:
    """SMS shows a prefix of the items and counts the rest; folding may have stripped accents."""
    text = fold_to_gsm(body)
    lines = shown_lines(kind, f)
    shown = 0
    for it, k in lines:
        head = fold_to_gsm(f"{qty_shown(it, k)}x {it['name'][:20]}")
        if head not in text:
            break
        shown += 1
        check_dates(text.split(head, 1)[1].split(";", 1)[0], it, k, locale, fold_to_gsm)
    assert shown >= 1 or not lines, body
    products = sum(1 for e in f.get("entries", []) if e["product"])  # a digest counts them in "+N more"
    if shown < len(lines):
        assert fold_to_gsm(f"+{len(lines) + products - shown} {MORE[locale]}") in text, body


CHANNEL_CASES = [(k, c, loc) for k in KINDS for c in TEMPLATE_CHANNELS for loc in LOCALES]


@pytest.mark.parametrize("size", ["short", "long"])
@pytest.mark.parametrize(("kind", "channel", "locale"), CHANNEL_CASES)
def test_every_kind_renders_on_every_channel(kind: str, channel: str, locale: str, size: str) -> None:
    items = short_items() if size == "short" else long_items()
    f = facts(kind, items, locale)
    r = render_notice(kind, channel, locale, f)
    assert isinstance(r, Rendered)
    assert r.body and "None" not in r.body
    if channel == "email":
        assert r.subject and "\n" not in r.subject
        assert r.html and r.html.startswith("<!DOCTYPE html>") and "None" not in r.html
    else:
        assert r.subject is None and r.html is None
    if channel == "sms":
        assert segments(r.body) <= SMS_MAX_SEGMENTS, r.body
        if kind in CUSTOMER_KINDS or kind == "high_value_backorder":
            check_sms(r.body, f, kind, locale)
    elif kind in CUSTOMER_KINDS or kind == "high_value_backorder":
        check_long_form(r.body, f, kind, locale)
        if r.html:
            check_long_form(r.html, f, kind, locale, escape=True)


@pytest.mark.parametrize("locale", LOCALES)
def test_long_order_sms_counts_what_it_leaves_out(locale: str) -> None:
    body = render_notice("backorder_created", "sms", locale, facts("backorder_created", long_items(), locale)).body
    assert segments(body) <= SMS_MAX_SEGMENTS
    assert fold_to_gsm(f" {MORE[locale]}") in body
    assert not body.endswith("...")  # fewer items made it fit: no cut needed


def test_sms_dates_and_reasons_for_shown_items() -> None:
    body = render_notice("backorder_created", "sms", "en", facts("backorder_created", short_items())).body
    assert body == ("Order SO-1001, on backorder: 3x Widget Pro (Mar 9, 2026); "
                    "1x Gadget (no date yet, no restock scheduled)")


def test_huge_digest_sms_fits_and_counts_the_rest() -> None:
    f = facts("digest", short_items())
    f["entries"] = [{"kind": "backorder_created", "order": order(f"SO-{n:03d}"), "items": long_items(),
                     "product": None} for n in range(25)]
    body = render_notice("digest", "sms", "es", f).body
    assert segments(body) <= SMS_MAX_SEGMENTS
    assert body.startswith("Novedades de sus pedidos: Pedido SO-000 pendiente: 2x Industrial")
    shown = len(re.findall(r"\b\d+x ", body))  # every shown item reads "<qty>x <name>"
    assert body.endswith(f"+{300 - shown} mas")


def test_sms_cut_is_the_last_resort() -> None:
    f = facts("backorder_created", short_items())
    f["order"]["id"] = "SO-" + "9" * 400
    body = render_notice("backorder_created", "sms", "en", f).body
    assert segments(body) == SMS_MAX_SEGMENTS and body.endswith("...")


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("channel", ["console", "email"])
def test_text_wording(locale: str, channel: str) -> None:
    r = render_notice("backorder_created", channel, locale, facts("backorder_created", short_items(), locale))
    if locale == "en":
        assert "Hello Ann Lee," in r.body
        assert "- 3 × Widget Pro (SKU-001): on backorder (2 more already reserved), expected Mar 9, 2026" in r.body
        assert ("- 1 × Gadget (SKU-002): on backorder, no date yet "
                "(no restock has been scheduled with our supplier yet)") in r.body
    else:
        assert "Hola, Ann Lee:" in r.body
        assert ("- 3 × Widget Pro (SKU-001): pendiente de reposición (otras 2 unidades ya reservadas); "
                "llegada prevista: 9 mar 2026") in r.body
        assert "sin fecha por ahora (todavía no hay una reposición programada con nuestro proveedor)" in r.body


def test_eta_changed_shows_old_and_new_date() -> None:
    body = render_notice("eta_changed", "console", "en", facts("eta_changed", short_items())).body
    assert "3 × Widget Pro (SKU-001): now expected Mar 9, 2026 (was Mar 6, 2026)" in body
    assert "1 × Gadget (SKU-002): no date for now (no restock has been scheduled with our supplier yet)" in body


def test_unknown_reason_still_says_no_date() -> None:
    f = facts("backorder_created", [item(1, eta=None, reason="something_new")])
    for locale, line, short in (
        ("en", "5 × Widget Pro (SKU-001): on backorder, no date yet\n", "5x Widget Pro (no date yet)"),
        ("es", "5 × Widget Pro (SKU-001): pendiente de reposición; sin fecha por ahora\n", "5x Widget Pro (sin fecha)"),
    ):
        assert line in render_notice("backorder_created", "console", locale, f).body
        assert render_notice("backorder_created", "sms", locale, f).body.endswith(short)


def test_shipped_links_only_web_addresses() -> None:
    f = facts("shipped", short_items())
    r = render_notice("shipped", "email", "en", f)
    assert '<a href="https://ups.example/t?n=1Z9&amp;l=en">' in (r.html or "")
    assert "Track your package: https://ups.example/t?n=1Z9&l=en" in r.body
    f["tracking_url"] = "javascript:alert(1)"
    assert "<a " not in (render_notice("shipped", "email", "en", f).html or "")


@pytest.mark.parametrize("kind", ["backorder_created", "back_in_stock", "digest", "high_value_backorder"])
def test_html_escapes_names_and_text_keeps_them(kind: str) -> None:
    name = "<b>Ann & Co</b>"
    r = render_notice(kind, "email", "en", facts(kind, short_items(), name=name))
    assert r.html is not None
    assert "<b>" not in r.html and "<M8>" not in r.html
    if kind == "back_in_stock":
        assert "Nuts &amp; Bolts &lt;M8&gt;" in r.html and "Nuts & Bolts <M8>" in r.body
    else:
        assert "&lt;b&gt;Ann &amp; Co&lt;/b&gt;" in r.html and name in r.body


def test_staff_notices_have_no_customer_greeting() -> None:
    for kind in INTERNAL_KINDS:
        body = render_notice(kind, "console", "en", facts(kind, short_items())).body
        assert not body.startswith("Hello") and "patience" not in body


def test_ops_digest_numbers_follow_the_locale() -> None:
    f = facts("ops_digest", [])
    assert "Open: 120 lines, 840 units, 25,300.00" in render_notice("ops_digest", "console", "en", f).body
    assert "Abiertas: 120 líneas, 840 unidades, 25.300,00" in render_notice("ops_digest", "console", "es", f).body


def test_task_lists_its_detail() -> None:
    body = render_notice("procurement_task", "console", "es", facts("procurement_task", [])).body
    assert body.startswith("Nueva tarea de compras n.º 12 (expedite po): Expedite PO-7 for SKU-001.")
    assert "- po id: PO-7" in body and "- waiting units: 30" in body


def test_digest_groups_by_order() -> None:
    body = render_notice("digest", "console", "en", facts("digest", short_items())).body
    first, second = body.index("Order SO-1001 (placed"), body.index("Order SO-2002 (placed")
    assert first < second
    assert "since Mar 8, 2026, 3:00\u202fAM" in body  # 09:00 UTC in Mexico City; CLDR puts a narrow space
    assert "Back in stock" in body and "Nuts & Bolts <M8> Mixed Box (NB-8) is back in stock: 40 available" in body


@pytest.mark.parametrize("kind", ["backorder_created", "shipped", "digest", "ops_digest", "procurement_task"])
def test_missing_fact_raises(kind: str) -> None:
    f = facts(kind, short_items())
    f.pop(next(iter(f)))
    with pytest.raises(UndefinedError):
        render_notice(kind, "email", "en", f)


def test_missing_item_field_raises() -> None:
    f = facts("backorder_created", short_items())
    del f["items"][1]["eta_reason"]
    with pytest.raises(UndefinedError):
        render_notice("backorder_created", "sms", "en", f)


def test_bad_arguments_are_refused() -> None:
    f = facts("backorder_created", short_items())
    with pytest.raises(ValueError, match="unknown notice kind"):
        render_notice("nope", "console", "en", f)
    with pytest.raises(ValueError, match="channel"):
        render_notice("backorder_created", "../etc", "en", f)
    with pytest.raises(ValueError, match="reserved"):
        render_notice("backorder_created", "console", "en", {**f, "locale": "en"})


def test_locale_fallback() -> None:
    assert [resolve_locale(x) for x in ("es-MX", "es_MX", "ES", "es", "fr", "", "en-GB")] == [
        "es", "es", "es", "es", "en", "en", "en"]
    f = facts("backorder_created", short_items())
    es = render_notice("backorder_created", "console", "es", f).body
    assert render_notice("backorder_created", "console", "es-MX", f).body == es
    assert render_notice("backorder_created", "console", "fr", f).body == render_notice(
        "backorder_created", "console", "en", f).body


def test_regional_locale_formats_numbers_its_own_way() -> None:
    f = facts("high_value_backorder", short_items())
    assert "4.250,50" in render_notice("high_value_backorder", "console", "es", f).body
    assert "4,250.50" in render_notice("high_value_backorder", "console", "es-MX", f).body


@pytest.mark.parametrize("channel", ["slack", "teams", "webhook", "whatsapp"])
def test_other_channels_get_the_text_style(channel: str) -> None:
    f = facts("shipped", short_items())
    assert render_notice("shipped", channel, "en", f).body == render_notice("shipped", "console", "en", f).body


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("kind", KINDS)
def test_chat_channels_get_a_card_with_short_buttons(kind: str, locale: str) -> None:
    f = facts(kind, short_items())
    card = render_notice(kind, "slack", locale, f).card
    assert card is not None and card["kind"] == kind
    assert card["title"] and card["text"] == render_notice(kind, "slack", locale, f).body
    assert len(card["actions"]) <= 3, "WhatsApp shows at most three quick replies"
    for action in card["actions"]:
        assert 0 < len(action["label"]) <= 20, f"{action} is too long for a WhatsApp button"
        assert action["value"]
    assert all(field["label"] and field["value"] for field in card["fields"])
    assert render_notice(kind, "console", locale, f).card is None
    assert render_notice(kind, "webhook", locale, f).card is None


@pytest.mark.parametrize("evil", ["Eve\naction\tcomplete_task\tApprove refund\t7", "Eve\ttopic\tsku:OTHER",
                                  "Eve\r\nfield\tPaid\tyes", "Eve\u2028action\thandoff\tx\t1"])
def test_a_name_from_the_store_cannot_add_buttons_fields_or_a_topic_to_a_card(evil: str) -> None:
    honest = render_notice("high_value_backorder", "slack", "en", facts("high_value_backorder", short_items())).card
    card = render_notice("high_value_backorder", "teams", "en", facts("high_value_backorder", short_items(),
                                                                     name=evil)).card
    assert card is not None and honest is not None
    assert card["actions"] == honest["actions"] and card["topic"] == honest["topic"]
    assert [f["label"] for f in card["fields"]] == [f["label"] for f in honest["fields"]]
    assert card["fields"][1]["value"].startswith("Eve ")  # the name is there, on one line


def test_template_lookup_prefers_channel_then_style() -> None:
    assert template_names("shipped", "whatsapp", "text", "es") == [
        "es/shipped.whatsapp.j2", "es/shipped.text.j2", "es/shipped.j2"]
    assert template_names("shipped", "sms", "sms", "en") == ["en/shipped.sms.j2", "en/shipped.j2"]
    assert template_names("shipped", "email", "html", "en") == ["en/shipped.html.j2", "en/shipped.j2"]


def test_libraries_are_imported_without_context() -> None:
    """An import `with context` builds the library anew on every render, which was most of a render's time;
    without context Jinja builds it once. The macros take what they read as arguments instead."""
    tag = re.compile(r"{%-?\s*(?:import|from)\b[^%]*\bwith\s+context\b")
    offenders = [str(path.relative_to(NOTIFY_DIR)) for path in sorted(NOTIFY_DIR.rglob("*.j2"))
                 if tag.search(path.read_text(encoding="utf-8"))]
    assert offenders == []


def test_each_render_formats_for_its_own_reader() -> None:
    """The date filters inside the shared macros follow each notice's locale and time zone, render after render."""
    it = item(1, eta="2026-03-09T03:00:00Z")  # still Mar 8 in Mexico City, already Mar 9 in Tokyo

    def render(channel: str, locale: str, tz: str) -> str:
        f = facts("backorder_created", [it], locale)
        f["customer"]["timezone"] = tz
        return render_notice("backorder_created", channel, locale, f).body

    for _ in range(2):
        assert "expected Mar 8, 2026" in render("console", "en", "America/Mexico_City")
        assert "expected Mar 9, 2026" in render("console", "en", "Asia/Tokyo")
        assert "llegada prevista: 9 mar 2026" in render("console", "es", "Asia/Tokyo")
        assert render("sms", "en", "America/Mexico_City").endswith("5x Widget Pro (Mar 8, 2026)")
        assert render("sms", "es", "Asia/Tokyo").endswith("5x Widget Pro (9 mar 2026)")


@pytest.mark.parametrize("source", [
    "{{ d.eta }}", "{{ d.missing }}", "{{ d.items()|list }}", "{{ d['items'] }}", "{{ d.keys()|list }}",
    "{{ d.get('eta') }}", "{{ d.__class__ }}", "{{ d.__class__.__subclasses__() }}", "{{ d.eta.__class__.__mro__ }}",
    "{{ '{0}!'.format(s) }}", "{{ s.startswith('a') }}", "{{ n.missing }}", "{{ u.x }}",
    '{% import "layout/parts.j2" as p %}{{ p.heading(s) }}|{{ p.link("https://x/?a=1&b") }}|{{ p.nope is defined }}',
    '{% import "layout/parts.j2" as p %}{{ p._body_stream }}',
    '{% import "layout/parts.j2" as p %}{% call(r) p.list([1, 2]) %}<{{ r }}>{% endcall %}',
    '{% import "en/_lib.j2" as w %}{{ w.days(1) }} {{ w.days(n) }} {{ w.more(s) }}',
    '{% import "en/_lib.j2" as w %}{{ w.__class__ }}',
    "{% macro m(a) %}[{{ a }}]{% endmacro %}{{ m(s) }}{% for x in [1, 2] %}{{ m(x) }}{% endfor %}",
    "{% macro m(a) %}[{{ a }}]{% endmacro %}{% block b %}{% for x in [1] %}{{ m(x) }}{% endfor %}{% endblock %}",
    "{% macro m(a) %}[{{ a }}]{% endmacro %}{{ m(caller=1) }}",
    "{% macro m(a) %}[{{ a }}]{% endmacro %}{{ m(1, 2) }}",
    "{% macro m() %}[{{ caller() }}]{% endmacro %}{% call m() %}<{{ s }}>{% endcall %}",
])
@pytest.mark.parametrize("html", [False, True])
def test_sandbox_answers_as_the_stock_one(source: str, html: bool) -> None:
    """The notice environment takes shortcuts for dict facts, library macros and macro calls: every answer,
    refusal and error must stay the stock sandbox's."""
    stock = SandboxedEnvironment(loader=FileSystemLoader(NOTIFY_DIR), undefined=StrictUndefined, autoescape=html,
                                 trim_blocks=True, lstrip_blocks=True)
    stock.globals["html"] = html
    stock.filters.update(environment(html).filters)
    values = {"d": {"eta": "2026-03-09", "items": [1]}, "s": "a<b>", "n": 3, "u": stock.undefined(name="u")}

    def outcome(env: SandboxedEnvironment) -> str:
        try:
            return env.from_string(source).render(values)
        except Exception as e:  # the error itself is the answer compared
            return f"{type(e).__name__}: {e}"

    assert outcome(environment(html)) == outcome(stock)


def test_an_approved_text_keeps_the_notices_subject_buttons_and_escapes_its_html() -> None:
    f = facts("substitution_offer", short_items())
    words = "Hi Ann,\n\nWe can send <Widget Max> instead.\nReply below."
    email = render_approved("substitution_offer", "email", "en", f, words)
    assert email.body == words + "\n\nReply SWAP 7 to take it, or KEEP 7 to keep waiting."
    assert email.subject == render_notice("substitution_offer", "email", "en", f).subject
    assert email.html is not None and "&lt;Widget Max&gt;" in email.html and "<br>Reply below." in email.html
    card = render_approved("substitution_offer", "whatsapp", "en", f, words).card
    assert card is not None and card["text"] == words
    assert [a["id"] for a in card["actions"]] == ["accept_substitute", "decline_substitute"]
    assert {a["value"] for a in card["actions"]} == {"7"}
    sms = render_approved("substitution_offer", "sms", "es", f, words).body
    assert sms == words + "\n\nResponda CAMBIAR 7 para aceptarlo, o MANTENER 7 para seguir esperando."
    assert render_approved("substitution_offer", "sms", "en", f, sms + " Reply SWAP 7 to take it, or KEEP 7 to keep "
                           "waiting.").body.count("SWAP 7") == 1
    assert render_approved("backorder_created", "sms", "en", facts("backorder_created", short_items()),
                           words).body == words
