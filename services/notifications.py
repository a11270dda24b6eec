"""Plan notifications inside the unit of work that made the decisions: rules -> recipients ->
messages -> policy -> outbox rows. Nothing is sent here; the rows commit with the state change.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, bindparam, func, select, update

from backorder.config import NotifySettings, RuleSettings, StaffContact
from notifiers import preferences as prefs_mod
from notifiers import routing
from notifiers.render import render_approved, render_notice
from notifiers.rules import DECISIONS, DEFAULT_ROLES, Notice, RuleConfig, Segment, excluded, notices_for, still_applies
from services import drafts, offers, substitutions
from services.context import Context
from services.notify_facts import IN_CHUNK, CustomerFacts, Facts, item, load_customers, load_lines
from store import tables as t
from store.db import txn_state
from store.upsert import insert_ignore

log = logging.getLogger(__name__)

OPEN = ("pending", "failed", "held")
CUSTOMER_STALE_KINDS = ("backorder_created", "eta_changed", "delay_overdue", "allocated")
MOVES_ON = frozenset({"backorder_resolved", "line_allocated", "line_shipped", "line_cancelled", "allocation_released"})


def idempotency_key(*parts: object) -> str:
    """(event, recipient, kind, channel) and what scopes them, as one fixed-length key."""
    digest = hashlib.sha256("|".join("" if p is None else str(p) for p in parts).encode()).hexdigest()
    return f"{parts[0]}:{parts[1]}:{digest[:40]}"


def rule(cfg: NotifySettings, kind: str) -> RuleSettings:
    return cfg.rules.get(kind) or RuleSettings()


def rule_config(cfg: NotifySettings) -> RuleConfig:
    return RuleConfig(eta_change_min_days=cfg.eta_change_min_days, high_value_threshold=cfg.high_value_threshold,
                      shipped_only_backorders=cfg.shipped_only_backorders,
                      disabled=frozenset(k for k, r in cfg.rules.items() if not r.enabled))


def plan(conn: Connection, ctx: Context, events: Sequence[tuple[str, Mapping[str, Any]]], cause: str | None,
         restocked: Iterable[str] = ()) -> int:
    """Write the outbox rows these events call for; returns how many were planned.

    `restocked`: SKUs that may have free stock now (a receipt, a count, a cancellation), whose
    back-in-stock subscribers are checked.
    """
    cfg = ctx.settings.notify
    now = ctx.now()
    occurred_at = txn_state(conn).get("occurred_at") or now
    pks = {int(d["line_pk"]) for _, d in events if d.get("line_pk") is not None}
    facts = load_lines(conn, pks)
    rows: list[dict[str, Any]] = []
    builder = RowBuilder(ctx, cause, now, occurred_at)
    builder.pending_drafts = []  # this unit of work's drafts are written at once, below
    notices = notices_for(events, facts.lines, rule_config(cfg))
    valued = {n.order_id for n in notices if n.audience == "customer" and n.kind in drafts.DRAFT_KIND and n.order_id}
    # The lines' own orders came with their values (load_lines); only another order costs a query.
    builder.order_values = {o: facts.order_values[o] for o in valued if o in facts.order_values}
    if len(builder.order_values) < len(valued):
        builder.order_values.update(drafts.order_values(conn, valued - facts.order_values.keys()))
    for notice in notices:
        try:
            if notice.audience == "customer":
                rows += builder.customer_rows(conn, notice, facts)
            else:
                rows += builder.staff_rows(notice, facts)
        except Exception as exc:
            # A bad template must not hold up allocation: the state commits, and the message
            # that could not be built is recorded dead with the reason, where the KPIs show it.
            log.exception("planning %s for %s failed", notice.kind, notice.scope)
            rows.append(builder.unplannable(notice, exc))
    rows += builder.webhook_rows(events)
    rows += offers.plan_offers(conn, builder, [n for n in notices if n.kind == "backorder_created"], facts)
    restocked = set(restocked)
    if restocked:
        rows += back_in_stock(conn, builder, restocked)
    drafts.write_pending(conn, builder)
    if rows:
        _supersede(conn, rows, now)
        insert_ignore(conn, t.outbox, rows, ["idempotency_key"])
    # Only a line that moved on can make a waiting notice stale: a new order skips the query.
    orders = sorted({facts.lines[int(d["line_pk"])].order_id for e, d in events
                     if e in MOVES_ON and d.get("line_pk") is not None and int(d["line_pk"]) in facts.lines})
    for i in range(0, len(orders), IN_CHUNK):
        cancel_stale(conn, orders[i:i + IN_CHUNK], now)
    if orders:
        drafts.cancel_stale(conn, ctx, orders, now)
        substitutions.withdraw_stale(conn, [int(d["line_pk"]) for e, d in events
                                            if e in MOVES_ON and d.get("line_pk") is not None], now)
    return len(rows)


class RowBuilder:
    def __init__(self, ctx: Context, cause: str | None, now: datetime, occurred_at: datetime) -> None:
        self.ctx = ctx
        self.cfg = ctx.settings.notify
        self.cause = cause
        self.now = now
        self.occurred_at = occurred_at
        self.channels = ctx.channels
        self.order_values: dict[str, float] = {}
        # A list: drafts are collected for drafts.write_pending; None: each is written at once (drafts.new_draft).
        self.pending_drafts: list[drafts.PendingDraft] | None = None

    def _base(self, kind: str, audience: str, key: str, **values: Any) -> dict[str, Any]:
        row = {"idempotency_key": key, "kind": kind, "audience": audience, "customer_id": None, "order_id": None,
               "sku": None, "role": None, "line_ids": [], "locale": "en", "subject": None, "body": "", "html": None,
               "payload": {}, "facts": {}, "fallback": [], "urgent": False, "status": "pending",
               "due_at": self.now, "expires_at": self.now + timedelta(hours=self.cfg.max_age_hours),
               "lease_owner": None, "attempts": 0, "error": None, "error_reason": None, "provider_id": None,
               "cause": self.cause, "occurred_at": self.occurred_at, "created_at": self.now,
               "updated_at": self.now, "sent_at": None, "delivered_at": None}
        row.update(values)
        return row

    def rendered(self, row: dict[str, Any], channel: str, address: str, text: str | None = None) -> dict[str, Any]:
        if text is None:
            out = render_notice(row["kind"], channel, row["locale"], row["facts"])
        else:
            out = render_approved(row["kind"], channel, row["locale"], row["facts"], text)
        row.update(channel=channel, recipient=address, subject=out.subject, body=out.body, html=out.html)
        if out.card is not None:
            row["payload"] = out.card
        return row

    def unplannable(self, notice: Notice, exc: Exception) -> dict[str, Any]:
        key = idempotency_key(notice.kind, "none", self.cause, notice.scope, notice.customer_id or notice.audience)
        return self._base(notice.kind, notice.audience, key, channel="none", recipient="", status="dead",
                          due_at=None, customer_id=notice.customer_id, order_id=notice.order_id, sku=notice.sku,
                          error_reason="planning_error", error=f"{type(exc).__name__}: {exc}"[:2000])

    # -- customers -------------------------------------------------------------------------------
    def customer_facts(self, notice: Notice, facts: Facts, customer: CustomerFacts) -> dict[str, Any]:
        order = facts.orders.get(notice.order_id or "")
        data: dict[str, Any] = {"customer": customer.template(), "order": order.template() if order else None,
                                "items": [item(facts.lines[pk], notice.previous_eta.get(pk))
                                          for pk in sorted(notice.line_pks, key=lambda k: facts.lines[k].line_id)]}
        data.update(notice.extra)
        return data

    def customer_rows(self, conn: Connection, notice: Notice, facts: Facts) -> list[dict[str, Any]]:
        customer = facts.customers.get(notice.customer_id or "")
        if customer is None:
            return []
        order = facts.orders.get(notice.order_id or "")
        segment = Segment(customer.customer_id, customer.tier, customer.region, customer.tags,
                          order.sources if order else frozenset())
        data = self.customer_facts(notice, facts, customer)
        lines = [facts.lines[pk].line_id for pk in notice.line_pks]
        return self.for_customer(conn, notice.kind, customer, data, segment, scope=notice.scope,
                                 order_id=notice.order_id, line_ids=lines)

    def for_customer(self, conn: Connection, kind: str, customer: CustomerFacts, data: dict[str, Any],
                     segment: Segment, *, scope: str, order_id: str | None = None, line_ids: Sequence[str] = (),
                     sku: str | None = None, channel_hint: str | None = None, text: str | None = None,
                     offer_id: int | None = None) -> list[dict[str, Any]]:
        """The rows of one customer notice; `text`: a person's approved words, sent as they are.

        Without `text`, the drafts policy may say this notice is to be a draft: it is written, and no row yet.
        """
        r = rule(self.cfg, kind)
        if text is None and (not r.enabled or excluded(segment, r.exclude.model_dump())):
            return []
        p = prefs_mod.resolve(customer.preferences, default_channel=self.cfg.default_channel,
                              default_digest_at=self.cfg.digest_at)
        if p.stopped:
            return []
        if channel_hint and p.channels[:1] != (channel_hint,):  # this notice's channel first, then theirs
            first = (channel_hint, *[c for c in p.channels if c != channel_hint])
            p = prefs_mod.Prefs(first, p.delivery, p.digest_at, p.quiet_hours, p.routing, p.opt_out,
                                p.max_per_order_per_day)
        tz = prefs_mod.zone(customer.timezone)
        due = self.now
        hours = prefs_mod.window(r.hours.model_dump()) if r.hours else None
        due = prefs_mod.inside_window(due, tz, hours)
        if not r.urgent:
            due = prefs_mod.inside_window(prefs_mod.after_window(due, tz, p.quiet_hours), tz, hours)
        common = {"customer_id": customer.customer_id, "order_id": order_id, "sku": sku, "line_ids": list(line_ids),
                  "locale": customer.locale, "facts": data, "urgent": r.urgent, "due_at": due,
                  "expires_at": due + timedelta(hours=self.cfg.max_age_hours)}
        plan = routing.customer_plan(p, customer.contacts, customer.customer_id, self.channels)
        if text is None:
            draft_mode = drafts.mode(self.ctx, kind, customer.tier, self.order_values.get(order_id or "", 0.0))
            if draft_mode != "template":
                self._draft(conn, kind, draft_mode, customer, data, plan, scope=scope, order_id=order_id,
                            sku=sku, line_ids=line_ids, offer_id=offer_id)
                return []
        # A person's approved words go out as they are, not folded into a digest.
        to_digest = text is None and not r.urgent and (
            p.delivery == "digest" or self._over_cap(conn, p, customer, order_id, tz))
        if to_digest:
            key = idempotency_key(kind, "digest", self.cause, scope, f"customer:{customer.customer_id}")
            return [self._base(kind, "customer", key, channel="digest", recipient=customer.customer_id,
                               status="held", **common)]
        return self.routed(kind, "customer", plan, f"customer:{customer.customer_id}", scope, common, text)

    def _draft(self, conn: Connection, kind: str, draft_mode: str, customer: CustomerFacts, data: dict[str, Any],
               plan: routing.Plan, *, scope: str, order_id: str | None, sku: str | None, line_ids: Sequence[str],
               offer_id: int | None) -> None:
        channel = plan.send[0].channel if plan.send else self.cfg.default_channel
        template_text = render_notice(kind, channel, customer.locale, data).body
        key = idempotency_key(kind, "draft", self.cause, scope, f"customer:{customer.customer_id}")
        # The customer's own words travel beside the facts, marked untrusted, never among them.
        facts = {k: v for k, v in data.items() if k != "question"}
        drafts.new_draft(self, conn, kind, draft_mode, customer, facts, key=key, channel=channel,
                         template_text=template_text, order_id=order_id, sku=sku, line_ids=line_ids,
                         offer_id=offer_id, question=data.get("question"))

    def _over_cap(self, conn: Connection, p: prefs_mod.Prefs, customer: CustomerFacts, order_id: str | None,
                  tz: Any) -> bool:
        if p.max_per_order_per_day is None or order_id is None:
            return False
        o = t.outbox
        sent_today = conn.execute(select(func.count()).select_from(o).where(
            o.c.customer_id == customer.customer_id, o.c.order_id == order_id, o.c.audience == "customer",
            o.c.created_at >= prefs_mod.local_day_start(self.now, tz),
            o.c.status.notin_(("cancelled", "held", "digested", "dead")),
        )).scalar_one()
        return int(sent_today) >= p.max_per_order_per_day

    def routed(self, kind: str, audience: str, plan: routing.Plan, who: str, scope: str,
               common: dict[str, Any], text: str | None = None) -> list[dict[str, Any]]:
        if not plan.send:
            channel = plan.unusable[0][0] if plan.unusable else "none"
            key = idempotency_key(kind, channel, self.cause, scope, who)
            row = self._base(kind, audience, key, **{
                **common, "channel": channel, "recipient": "", "status": "dead", "due_at": None,
                "error_reason": "no_usable_channel",
                "error": "no usable channel: " + ", ".join(f"{c} ({w})" for c, w in plan.unusable)})
            return [row]
        fallback = [[r.channel, r.address] for r in plan.fallback]
        rows = []
        for rt in plan.send:
            key = idempotency_key(kind, rt.channel, self.cause, scope, who)
            row = self._base(kind, audience, key, fallback=fallback, **common)
            rows.append(self.rendered(row, rt.channel, rt.address, text))
        return rows

    # -- staff -----------------------------------------------------------------------------------
    def staff_rows(self, notice: Notice, facts: Facts) -> list[dict[str, Any]]:
        data: dict[str, Any] = dict(notice.extra)
        if notice.kind == "high_value_backorder":
            customer = facts.customers.get(notice.customer_id or "")
            order = facts.orders.get(notice.order_id or "")
            data.update(customer=customer.template() if customer else None, order=order.template() if order else None,
                        items=[item(facts.lines[pk]) for pk in notice.line_pks])
        lines = [facts.lines[pk].line_id for pk in notice.line_pks if pk in facts.lines]
        return self.for_staff(notice.kind, data, scope=notice.scope, order_id=notice.order_id,
                              customer_id=notice.customer_id, sku=notice.sku, line_ids=lines)

    def for_staff(self, kind: str, data: dict[str, Any], *, scope: str, order_id: str | None = None,
                  customer_id: str | None = None, sku: str | None = None,
                  line_ids: Sequence[str] = ()) -> list[dict[str, Any]]:
        r = rule(self.cfg, kind)
        if not r.enabled:
            return []
        tz = prefs_mod.zone(self.cfg.ops_timezone)
        due = prefs_mod.inside_window(self.now, tz, prefs_mod.window(r.hours.model_dump()) if r.hours else None)
        rows: list[dict[str, Any]] = []
        for role in r.roles or DEFAULT_ROLES.get(kind, ("team",)):
            contact: StaffContact | None = self.ctx.settings.staff.role(role)
            if contact is None:
                continue
            addresses = {c: routing.staff_address(c, contact.model_dump(), role) for c in contact.channels}
            plan = routing.route(contact.channels, contact.routing, addresses, self.channels)
            common = {"role": role, "order_id": order_id, "customer_id": customer_id, "sku": sku,
                      "line_ids": list(line_ids), "facts": data, "urgent": r.urgent, "due_at": due,
                      "expires_at": due + timedelta(hours=self.cfg.max_age_hours)}
            rows += self.routed(kind, "staff", plan, f"role:{role}", scope, common)
        return rows

    # -- systems (decision sync) -----------------------------------------------------------------
    def webhook_rows(self, events: Sequence[tuple[str, Mapping[str, Any]]]) -> list[dict[str, Any]]:
        endpoints = self.ctx.settings.webhook.all_endpoints()
        if not endpoints or "webhook" not in self.channels or not rule(self.cfg, "decision").enabled:
            return []
        rows = []
        for index, (etype, data) in enumerate(events):
            if etype not in DECISIONS:
                continue
            for ep in endpoints:
                if ep.events and etype not in ep.events:
                    continue
                key = idempotency_key("decision", "webhook", self.cause, index, etype, ep.url)
                payload = {"id": key, "type": etype, "occurred_at": self.occurred_at.isoformat(),
                           "cause": self.cause, "data": dict(data)}
                rows.append(self._base("decision", "system", key, channel="webhook", recipient=ep.url,
                                       order_id=data.get("order_id"), sku=data.get("sku"), payload=payload,
                                       body=f"{etype} {data.get('order_id') or data.get('sku') or ''}".strip()))
        return rows


# Built once: every receipt, count and cancellation asks (most find no subscriber).
_OPEN_SUBSCRIPTIONS = select(t.subscriptions.c.id, t.subscriptions.c.customer_id, t.subscriptions.c.sku,
                             t.subscriptions.c.channel).where(
    t.subscriptions.c.sku.in_(bindparam("skus", expanding=True)), t.subscriptions.c.status == "open")


def back_in_stock(conn: Connection, builder: RowBuilder, skus: set[str]) -> list[dict[str, Any]]:
    """Tell subscribers of these SKUs that have stock free now; each subscription is told once."""
    s, st, p = t.subscriptions, t.stock, t.products
    subs = conn.execute(_OPEN_SUBSCRIPTIONS, {"skus": sorted(skus)}).all()
    if not subs:
        return []
    free = dict(conn.execute(
        select(st.c.sku, func.sum(st.c.on_hand - st.c.allocated)).where(st.c.sku.in_({x.sku for x in subs}))
        .group_by(st.c.sku)).tuples().all())
    names = dict(conn.execute(select(p.c.sku, p.c.name).where(p.c.sku.in_({x.sku for x in subs}))).tuples().all())
    ready = [x for x in subs if int(free.get(x.sku) or 0) > 0]
    customers = load_customers(conn, (x.customer_id for x in ready))
    rows: list[dict[str, Any]] = []
    for sub in ready:
        customer = customers.get(sub.customer_id)
        if customer is None:
            continue
        data = {"customer": customer.template(),
                "product": {"sku": sub.sku, "name": names.get(sub.sku, sub.sku), "available": int(free[sub.sku])}}
        segment = Segment(customer.customer_id, customer.tier, customer.region, customer.tags, frozenset())
        rows += builder.for_customer(conn, "back_in_stock", customer, data, segment, scope=f"subscription:{sub.id}",
                                     sku=sub.sku, channel_hint=sub.channel)
    if ready:
        conn.execute(update(s).where(s.c.id.in_([x.id for x in ready]))
                     .values(status="notified", notified_at=builder.now))
    return rows


def _supersede(conn: Connection, rows: Sequence[dict[str, Any]], now: datetime) -> None:
    """A newer date for the same lines replaces an older one not yet sent."""
    newer = {(r["order_id"], r["customer_id"], r["channel"]): set(r["line_ids"]) for r in rows
             if r["kind"] == "eta_changed" and r["status"] in ("pending", "held")}
    if not newer:
        return
    o = t.outbox
    orders = sorted({order for order, _, _ in newer})
    ids: list[int] = []
    for i in range(0, len(orders), IN_CHUNK):
        older = conn.execute(select(o.c.id, o.c.order_id, o.c.customer_id, o.c.channel, o.c.line_ids).where(
            o.c.order_id.in_(orders[i:i + IN_CHUNK]), o.c.kind == "eta_changed",
            o.c.status.in_(("pending", "held")))).all()
        ids += [r.id for r in older
                if set(r.line_ids or ()) <= newer.get((r.order_id, r.customer_id, r.channel), set())]
    if ids:
        conn.execute(update(o).where(o.c.id.in_(ids)).values(status="cancelled", error_reason="superseded",
                                                              due_at=None, updated_at=now))


# Built once: every unit of work in which a line moved on asks.
_WAITING_CUSTOMER_NOTICES = select(t.outbox.c.id, t.outbox.c.kind, t.outbox.c.order_id, t.outbox.c.line_ids).where(
    t.outbox.c.order_id.in_(bindparam("order_ids", expanding=True)), t.outbox.c.audience == "customer",
    t.outbox.c.status.in_(OPEN), t.outbox.c.kind.in_(CUSTOMER_STALE_KINDS))
_LINE_STATUSES = select(t.order_lines.c.order_id, t.order_lines.c.line_id, t.order_lines.c.status).where(
    t.order_lines.c.order_id.in_(bindparam("order_ids", expanding=True)))
_RESOLVED = update(t.outbox).where(and_(t.outbox.c.id.in_(bindparam("ids", expanding=True)),
                                        t.outbox.c.status.in_(OPEN))).values(
    status="cancelled", error_reason="resolved", due_at=None, updated_at=bindparam("b_now"))


def cancel_stale(conn: Connection, order_ids: Iterable[str], now: datetime) -> int:
    """Cancel waiting customer notices whose lines have all moved on (clear resolved alerts)."""
    order_ids = sorted(set(order_ids))
    pending = conn.execute(_WAITING_CUSTOMER_NOTICES, {"order_ids": order_ids}).all()
    if not pending:
        return 0
    status = {(r.order_id, r.line_id): r.status
              for r in conn.execute(_LINE_STATUSES, {"order_ids": sorted({p.order_id for p in pending})})}
    stale = [p.id for p in pending
             if not still_applies(p.kind, [status.get((p.order_id, x), "cancelled") for x in p.line_ids or ()])]
    if stale:
        conn.execute(_RESOLVED, {"ids": stale, "b_now": now})
    return len(stale)
