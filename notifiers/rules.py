"""Rules: which domain events make which notices, for whom. Plain data in, plain data out.

One pass of the allocator can emit several events for one line (backordered, then its first
ETA); rules fold them into one notice per order and kind, so a customer hears once per change.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

CUSTOMER_KINDS = ("backorder_created", "eta_changed", "allocated", "shipped", "delay_overdue",
                  "backorder_cancelled", "back_in_stock",
                  # offers and their answers, and the reply a person approved to a question (issue 6)
                  "substitution_offer", "substitution_confirmed", "substitution_declined",
                  "partial_shipment_offer", "partial_shipment_confirmed", "question_reply")
INTERNAL_KINDS = ("high_value_backorder", "procurement_task", "inventory_task", "handoff_task", "ops_digest",
                  "approval_request", "approval_escalation", "approval_outcome",
                  "task_overdue",  # a task past its due time, told to its role's lead (services/task_escalation.py)
                  "purchase_suggestion", "transfer_suggestion")  # reorder suggestions (services/reorder.py)
DEFAULT_ROLES = {"high_value_backorder": ("warehouse_manager",), "procurement_task": ("team",),
                 "inventory_task": ("team",), "handoff_task": ("team",), "ops_digest": ("team",),
                 "approval_request": ("approver",), "approval_escalation": ("lead",),
                 "task_overdue": ("lead",),  # when [tasks] leads names no lead for the task's role
                 "purchase_suggestion": ("procurement",), "transfer_suggestion": ("warehouse_manager",)}
TASK_KINDS = {"procurement_review": "procurement_task", "inventory_check": "inventory_task",
              "handoff": "handoff_task",
              # a reorder suggestion is its own notice: a card with Approve / Reject (docs/reorder.md)
              "purchase_suggestion": "purchase_suggestion", "transfer_suggestion": "transfer_suggestion"}
WAITING = ("backordered", "partially_allocated")
# A pending notice of this kind is stale once none of its lines is in one of these states.
STILL_APPLIES = {"backorder_created": WAITING, "eta_changed": WAITING, "delay_overdue": WAITING,
                 "allocated": ("allocated",)}
DECISIONS = ("line_backordered", "line_allocated", "line_partially_allocated", "backorder_resolved",
             "allocation_released", "line_cancelled", "line_shipped", "eta_changed", "delay_detected",
             "task_opened", "incident_recorded", "line_substituted")


@dataclass(frozen=True, slots=True)
class LineFacts:
    """A line as it stands after the change, with its order and product."""

    line_pk: int
    order_id: str
    line_id: str
    customer_id: str
    sku: str
    name: str
    qty: int
    qty_allocated: int
    qty_shipped: int
    status: str
    eta: str | None
    eta_reason: str | None
    unit_price: float
    waited: bool  # it was a backorder at some point

    @property
    def waiting(self) -> int:
        return max(self.qty - self.qty_allocated - self.qty_shipped, 0) if self.status in WAITING else 0


@dataclass(slots=True)
class Notice:
    kind: str
    audience: str  # customer | staff
    order_id: str | None = None
    customer_id: str | None = None
    line_pks: list[int] = field(default_factory=list)
    sku: str | None = None
    scope: str = ""  # what makes it unique within its cause (order, task, sku)
    extra: dict[str, Any] = field(default_factory=dict)
    previous_eta: dict[int, str | None] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RuleConfig:
    eta_change_min_days: int = 1
    high_value_threshold: float = 1000.0
    shipped_only_backorders: bool = True
    disabled: frozenset[str] = frozenset()


def _days_apart(a: str | None, b: str | None) -> int | None:
    if a is None or b is None:
        return None
    return abs((date.fromisoformat(a) - date.fromisoformat(b)).days)


def notices_for(events: Iterable[tuple[str, Mapping[str, Any]]], lines: Mapping[int, LineFacts],
                cfg: RuleConfig) -> list[Notice]:
    """The notices a batch of one transaction's events calls for (before preferences and policy)."""
    by_key: dict[tuple[str, str], Notice] = {}
    created: set[int] = set()
    staff: list[Notice] = []

    def add(kind: str, pk: int, **extra: Any) -> Notice | None:
        ln = lines.get(pk)
        if ln is None or kind in cfg.disabled:
            return None
        notice = by_key.get((kind, ln.order_id))
        if notice is None:
            notice = by_key[(kind, ln.order_id)] = Notice(kind, "customer", order_id=ln.order_id,
                                                          customer_id=ln.customer_id, scope=ln.order_id)
        if pk not in notice.line_pks:
            notice.line_pks.append(pk)
        notice.extra.update(extra)
        return notice

    events = list(events)
    for etype, data in events:
        if etype == "line_backordered" and "line_pk" in data:
            created.add(data["line_pk"])
    for etype, data in events:
        pk = data.get("line_pk")
        if etype == "line_backordered" and pk is not None:
            add("backorder_created", pk)
        elif etype == "eta_changed" and pk is not None and pk not in created:
            ln = lines.get(pk)
            if ln is None or ln.status not in WAITING:
                continue  # the line stopped waiting: the allocated/shipped/cancelled notice says so
            apart = _days_apart(data.get("old_eta"), data.get("new_eta"))
            if apart is not None and apart <= cfg.eta_change_min_days:
                continue
            notice = add("eta_changed", pk)
            if notice is not None:
                notice.previous_eta[pk] = data.get("old_eta")
        elif etype == "backorder_resolved" and pk is not None:
            add("allocated", pk)
        elif etype == "line_shipped" and pk is not None:
            ln = lines.get(pk)
            if ln is not None and (ln.waited or not cfg.shipped_only_backorders):
                add("shipped", pk, carrier=data.get("carrier"), tracking=data.get("tracking"),
                    tracking_url=data.get("tracking_url"))
        elif etype == "delay_detected" and pk is not None and data.get("previous_severity") is None:
            notice = add("delay_overdue", pk)
            if notice is not None:
                notice.extra["days_late"] = max(int(data.get("days_late") or 0), notice.extra.get("days_late", 0))
        elif etype == "line_cancelled" and pk is not None and data.get("previous_status") in WAITING:
            add("backorder_cancelled", pk)
        elif etype == "task_opened" and data.get("kind") in TASK_KINDS:
            kind = TASK_KINDS[data["kind"]]
            if kind not in cfg.disabled:
                staff.append(Notice(kind, "staff", sku=data.get("sku"), scope=f"task:{data.get('task_id')}",
                                    extra={"task": {"id": data.get("task_id"), "kind": data.get("kind"),
                                                    "sku": data.get("sku"), "title": data.get("title"),
                                                    "severity": data.get("severity"),
                                                    "detail": data.get("detail") or {},
                                                    "owner_role": data.get("owner_role"),
                                                    "due_at": data.get("due_at")}}))
    if "high_value_backorder" not in cfg.disabled:
        staff += _high_value(by_key, lines, cfg.high_value_threshold)
    return list(by_key.values()) + staff


def _high_value(by_key: Mapping[tuple[str, str], Notice], lines: Mapping[int, LineFacts],
                threshold: float) -> list[Notice]:
    out = []
    for (kind, order_id), notice in by_key.items():
        if kind != "backorder_created":
            continue
        value = round(sum(lines[pk].waiting * lines[pk].unit_price for pk in notice.line_pks), 2)
        if value > 0 and value >= threshold:
            out.append(Notice("high_value_backorder", "staff", order_id=order_id, customer_id=notice.customer_id,
                              line_pks=list(notice.line_pks), scope=order_id,
                              extra={"value": value, "threshold": threshold}))
    return out


def still_applies(kind: str, statuses: Iterable[str]) -> bool:
    """Whether a pending notice of `kind` about lines now in `statuses` should still go out."""
    wanted = STILL_APPLIES.get(kind)
    return wanted is None or any(s in wanted for s in statuses)


@dataclass(frozen=True, slots=True)
class Segment:
    """What the exclusion filters of a rule look at."""

    customer_id: str
    tier: str
    region: str | None
    tags: frozenset[str]
    sources: frozenset[str]


def excluded(segment: Segment, exclude: Mapping[str, Iterable[str]]) -> bool:
    return bool(
        segment.tier in set(exclude.get("tiers", ()))
        or (segment.region is not None and segment.region in set(exclude.get("regions", ())))
        or segment.tags & set(exclude.get("tags", ()))
        or segment.sources & set(exclude.get("sources", ()))
        or segment.customer_id in set(exclude.get("customers", ()))
    )
