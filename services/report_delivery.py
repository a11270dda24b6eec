"""Queue a weekly report's messages in the outbox, in the transaction that records the report.

Like every message, a report's rows are complete when planned (architecture: "a row is complete;
workers only send"): the Slack row carries the chart PNG, the e-mail row its inline charts and its
attachments (base64 in `payload`, a few hundred kB once a week), the Teams row a signed URL of the
chart (GET /reports/{id}/chart.png) when [links] public_base_url is set. Senders only draw and send.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import Connection

from notifiers import routing
from reporting import charts, formats
from reporting.text import render
from services.context import Context
from services.notifications import idempotency_key
from services.weekly_report import chart_signature
from store import tables as t
from store.upsert import insert_ignore

log = logging.getLogger(__name__)
KIND = "weekly_report"
SLACK_CHART = "trend"  # the chart uploaded to Slack and shown on the Teams card


def render_files(figures: Mapping[str, Any], attach: list[str]) -> dict[str, dict[str, bytes]]:
    """{"charts": {name: png}, "attachments": {format: bytes}}: what the messages carry."""
    return {"charts": charts.all_charts(dict(figures)),
            "attachments": {fmt: formats.render_format(figures, fmt) for fmt in attach}}


def recipients(ctx: Context) -> list[tuple[str, str, str | None]]:
    """(channel, address, role) once each: the roles' contacts by their routing, then the explicit addresses.

    An explicit address on a channel that is not configured is kept: its row is recorded dead, so the
    operator sees why nothing arrived.
    """
    cfg = ctx.settings.report
    out: list[tuple[str, str, str | None]] = []
    for role in cfg.roles:
        contact = ctx.settings.staff.role(role)
        if contact is None:
            continue
        addresses = {c: routing.staff_address(c, contact.model_dump(), role) for c in contact.channels}
        plan = routing.route(contact.channels, contact.routing, addresses, ctx.channels)
        for why in plan.unusable:
            log.info("weekly report: role %s cannot be reached on %s (%s)", role, *why)
        out += [(rt.channel, rt.address, role) for rt in plan.send]
    explicit = [("slack", cfg.slack_channel), ("teams", cfg.teams_conversation), *[("email", e) for e in cfg.emails]]
    out += [(channel, address, None) for channel, address in explicit if address]
    seen: set[tuple[str, str]] = set()
    unique = []
    for channel, address, role in out:
        if (channel, address) not in seen:
            seen.add((channel, address))
            unique.append((channel, address, role))
    return unique


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def chart_url(ctx: Context, report_id: int, name: str = SLACK_CHART) -> str | None:
    links = ctx.settings.links
    if not links.public_base_url or links.secret is None:
        return None
    sig = chart_signature(links.secret.get_secret_value(), report_id, name)
    return f"{links.public_base_url}/reports/{report_id}/chart.png?" + urlencode({"chart": name, "sig": sig})


def _message(ctx: Context, channel: str, report_id: int, figures: Mapping[str, Any],
             files: Mapping[str, Mapping[str, bytes]]) -> dict[str, Any]:
    """subject, body, html and payload of the report on one channel."""
    title, summary = formats.title(figures), formats.summary(figures)
    week = figures["week"]
    if channel == "slack":
        png = files["charts"][SLACK_CHART]
        return {"subject": title, "body": summary, "payload": {"title": title, "text": summary, "files": [
            {"filename": f"{SLACK_CHART}-{week}.png", "content_type": "image/png", "content_b64": _b64(png),
             "title": render("chart_title.txt.j2", week=week, chart=SLACK_CHART).strip()}]}}
    if channel == "teams":
        payload: dict[str, Any] = {"title": title, "text": summary}
        url = chart_url(ctx, report_id)
        if url:
            payload["image_url"] = url
        return {"subject": title, "body": summary, "payload": payload}
    if channel == "email":
        attachments = [{"filename": f"{name}.png", "content_type": "image/png", "content_b64": _b64(png), "cid": name}
                       for name, png in files["charts"].items()]
        attachments += [{"filename": formats.file_name(figures, fmt), "content_type": formats.CONTENT_TYPES[fmt],
                         "content_b64": _b64(data)} for fmt, data in files["attachments"].items()]
        html = formats.html(figures, chart_src=lambda name, _png: f"cid:{name}")
        body = render("email.txt.j2", summary=summary, attached=[formats.file_name(figures, f)
                                                                 for f in files["attachments"]]).strip()
        return {"subject": title, "body": body, "html": html, "payload": {"attachments": attachments}}
    return {"subject": title, "body": summary, "payload": {}}


def queue(conn: Connection, ctx: Context, report_id: int, figures: Mapping[str, Any],
          files: Mapping[str, Mapping[str, bytes]], now: datetime) -> int:
    """Write one outbox row per recipient; returns how many were queued to be sent."""
    cause = f"report:{report_id}"
    expires = now + timedelta(hours=ctx.settings.notify.max_age_hours)
    rows = []
    for channel, address, role in recipients(ctx):
        row = {"idempotency_key": idempotency_key(KIND, channel, cause, address), "kind": KIND, "channel": channel,
               "recipient": address, "audience": "staff", "role": role, "customer_id": None, "order_id": None,
               "sku": None, "line_ids": [], "locale": "en", "subject": None, "body": "", "html": None, "payload": {},
               "facts": {"report_id": report_id, "week": figures["week"]}, "fallback": [], "urgent": False,
               "status": "pending", "due_at": now, "expires_at": expires, "attempts": 0, "cause": cause,
               "error": None, "error_reason": None,  # every row names every column: one executemany writes them
               "occurred_at": now, "created_at": now, "updated_at": now}
        if channel not in ctx.channels:
            row.update(status="dead", due_at=None, error_reason="channel_not_configured",
                       error=f"[report] names a {channel} recipient but {channel} is not configured")
        else:
            row.update(_message(ctx, channel, report_id, figures, files))
        rows.append(row)
    insert_ignore(conn, t.outbox, rows, ["idempotency_key"])
    return sum(1 for r in rows if r["status"] == "pending")
