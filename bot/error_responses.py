"""The error answers each route can give, declared in /openapi.json so the schema tells the truth about them.

Declared in one place after every route is mounted: the token check (401/403) and the limits (413/429) apply
to routes by kind, and the table below gives each route the refusals its handler raises. The schema is checked
against the running app by tests/security/test_schemathesis.py (status codes and bodies), so a route that
starts answering an undeclared status fails there.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute

from backorder.config import LimitSettings
from bot.scopes import declared_scopes

# Every JSON refusal has a `detail`: a sentence, a list of {loc, msg, type} naming each field, or an object.
_ERROR: dict[str, Any] = {"type": "object", "required": ["detail"], "properties": {"detail": {}}}
# POST /events reports intake's errors, whose `loc` is a dotted path ("data.lines[0].qty"); FastAPI's own
# (a bad `wait`) are lists.
_EVENT_ERRORS: dict[str, Any] = {"type": "object", "required": ["detail"], "properties": {"detail": {
    "type": "array", "items": {"type": "object", "required": ["loc", "msg", "type"], "properties": {
        "loc": {"anyOf": [{"type": "string"}, {"type": "array", "items": {"anyOf": [{"type": "string"},
                                                                                   {"type": "integer"}]}}]},
        "msg": {"type": "string"}, "type": {"type": "string"}}}}}}
_HTML: dict[str, Any] = {"text/html": {"schema": {"type": "string"}}}
_NOT_READY: dict[str, Any] = {"type": "object", "required": ["status", "checks"],
                              "properties": {"status": {"const": "not ready"}, "checks": {"type": "object"}}}

NOT_FOUND, CONFLICT, FORBIDDEN, INVALID = (404, "no such record"), (409, "already decided or in another state"), \
    (403, "not allowed for this staff member, or from another site's page"), (422, "a field is invalid: named")
_TASK = dict([NOT_FOUND, CONFLICT, FORBIDDEN, INVALID])
_DASHBOARD = {403: "signed in without the scope or the staff id this needs", 401: "not signed in"}

# (method, path) -> {status: why}: what each handler raises beyond FastAPI's own 422.
SPECIFIC: dict[tuple[str, str], dict[int, str]] = {
    ("GET", "/orders/{order_id}"): dict([NOT_FOUND]),
    ("GET", "/skus/{sku}"): dict([NOT_FOUND]),
    ("POST", "/notifications/{notification_id}/retry"): {409: "not dead, failed or cancelled"},
    ("POST", "/notifications/{notification_id}/cancel"): {409: "not pending, failed or held"},
    ("DELETE", "/subscriptions/{subscription_id}"): dict([NOT_FOUND]),
    ("GET", "/drafts/{draft_id}"): dict([NOT_FOUND]),
    ("POST", "/drafts/{draft_id}/approve"): _TASK,
    ("POST", "/drafts/{draft_id}/reject"): _TASK,
    **{("POST", f"/tasks/{{task_id}}/{verb}"): _TASK for verb in ("take", "finish", "reassign", "approve", "reject")},
    ("GET", "/substitutes"): dict([NOT_FOUND]),
    ("POST", "/substitutions/{offer_id}/accept"): dict([NOT_FOUND, CONFLICT]),
    ("POST", "/substitutions/{offer_id}/decline"): dict([NOT_FOUND, CONFLICT]),
    ("GET", "/reports/{report_id}"): dict([NOT_FOUND]),
    ("GET", "/reports/{report_id}/chart.png"): dict([NOT_FOUND]),
    **{(m, f"/dashboard{p}"): _DASHBOARD for m, p in [("GET", "/data"), ("GET", "/stream"),
                                                      ("GET", "/tasks/{task_id}/choices"), ("GET", "/list/{name}")]},
    ("GET", "/dashboard/tasks/{task_id}/choices"): {**_DASHBOARD, **dict([NOT_FOUND])},
    ("POST", "/dashboard/tasks/{task_id}/{action}"): {**_TASK, 401: "not signed in"},
}
# The signed e-mail links answer people, with a page.
HTML_REFUSALS: dict[str, dict[int, str]] = {"/offers/{offer_id}/{verb}": {403: "the link's signature is wrong",
                                                                           404: "no such offer"}}


def _json(why: str, schema: dict[str, Any] = _ERROR) -> dict[str, Any]:
    return {"description": why, "content": {"application/json": {"schema": schema}}}


def declare(app: FastAPI, limits: LimitSettings) -> None:
    """Add the error answers to every route in the schema (before the schema is first built)."""
    for route in app.routes:
        if not isinstance(route, APIRoute) or not route.include_in_schema:
            continue
        extra: dict[int, dict[str, Any]] = {}
        if declared_scopes(route.dependencies):
            extra[401] = _json("missing or unknown bearer token")
            extra[403] = _json("the token lacks the scope this route needs")
        if route.body_field is not None:
            extra[400] = _json("the body could not be read as its content type")
        if "POST" in route.methods:
            extra[413] = _json("the body is over the size limit")
        if limits.enabled and route.path not in limits.exempt:
            extra[429] = _json("over this client's rate: wait Retry-After seconds")
        for method in route.methods:
            for status, why in SPECIFIC.get((method, route.path), {}).items():
                extra[status] = _json(why)
        for status, why in HTML_REFUSALS.get(route.path, {}).items():
            extra[status] = {"description": why, "content": _HTML}
        if route.path == "/readyz":
            extra[503] = _json("not ready: `checks` says which check failed", _NOT_READY)
        if route.path == "/events":
            extra[422] = _json("every invalid field, by its location; nothing is stored", _EVENT_ERRORS)
        for status, response in extra.items():
            route.responses.setdefault(status, response)
