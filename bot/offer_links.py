"""Signed links in e-mails that answer a substitution offer: GET and POST /offers/{id}/accept|decline?sig=...

The signature (HMAC-SHA256 of "accept:<id>" or "decline:<id>" with [links] secret, services/customer_actions.py)
is the authorisation: these routes take no bearer token. A GET only shows what the click would do and a
button; the button POSTs, and that acts. Mail scanners and link previews fetch links in e-mails, so a GET
that acted would accept offers for customers who never clicked. A signature that does not match answers
403 before anything is read, so a wrong link learns nothing about the offer.

Mounted only when [links] public_base_url is set (bot/api.py); services/offers.py puts the links in an
offer's facts through `offer_links` (re-exported here).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from functools import cache
from typing import Annotated, Any, Literal

from fastapi import FastAPI, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse
from jinja2 import FileSystemLoader, StrictUndefined
from jinja2.sandbox import SandboxedEnvironment

from bot.substitutes_api import OfferId
from prompts import TEMPLATE_DIR, render
from services import customer_actions
from services.context import Context
from services.customer_actions import link_valid, offer_links, offer_view

__all__ = ["mount", "offer_links"]

Verb = Literal["accept", "decline"]
Sig = Annotated[str | None, Query(description="the link's signature")]  # any other answers 403, not 422
# Nothing cached, nothing framed, nothing indexed, no Referer carrying the signed URL elsewhere.
HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex, nofollow",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
}
CSP = "default-src 'none'; style-src 'nonce-{nonce}'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"


@cache
def _pages() -> SandboxedEnvironment:
    return SandboxedEnvironment(loader=FileSystemLoader(TEMPLATE_DIR / "web"), autoescape=True,
                                undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)


def page(name: str, status: int, locale: str, **values: Any) -> HTMLResponse:
    es = locale.lower().startswith("es")
    nonce = secrets.token_urlsafe(16)
    html = _pages().get_template(f"{name}.html.j2").render(es=es, lang="es" if es else "en", nonce=nonce, **values)
    headers = {**HEADERS, "Content-Security-Policy": CSP.format(nonce=nonce)}
    return HTMLResponse(html, status_code=status, headers=headers)


def _asked_locale(request: Request) -> str:
    """Before the signature is checked nothing is read: the browser's language, for the refusal page."""
    return "es" if request.headers.get("Accept-Language", "").strip().lower().startswith("es") else "en"


def _answer_text(outcome: customer_actions.Outcome, locale: str) -> str:
    loc = "es" if locale.lower().startswith("es") else "en"
    return render(f"chat/{loc}/{outcome.template}.txt.j2", facts=outcome.facts, entities=outcome.entities,
                  ambiguous={})


def mount(app: FastAPI, ctx: Context, kick: Callable[[], None]) -> None:
    """The two routes, when [links] is configured; `kick` wakes the worker (a confirmation was queued)."""
    if not ctx.settings.links.public_base_url:
        return
    def _view(offer_id: int) -> dict[str, Any] | None:
        with ctx.engine.connect() as conn:
            return offer_view(conn, offer_id)

    async def _linked_offer(request: Request, offer_id: int, verb: Verb,
                            sig: str | None) -> dict[str, Any] | HTMLResponse:
        """The offer a signed link names, or the refusal page: 403 for a bad signature (nothing read), 404."""
        if not link_valid(ctx.settings, verb, offer_id, sig):
            return page("offer_refused", 403, _asked_locale(request), missing=False)
        view = await run_in_threadpool(_view, offer_id)
        if view is None:
            return page("offer_refused", 404, _asked_locale(request), missing=True)
        return view

    @app.get("/offers/{offer_id}/{verb}", response_class=HTMLResponse, tags=["offers"])
    async def show(request: Request, offer_id: OfferId, verb: Verb, sig: Sig = None) -> HTMLResponse:
        """The confirmation page of a signed e-mail link: what the click would do, and a button."""
        view = await _linked_offer(request, offer_id, verb, sig)
        if isinstance(view, HTMLResponse):
            return view
        if view["status"] != "offered":
            closed = customer_actions.Outcome("offer_closed", {"offer": view})
            return page("offer_result", 200, view["locale"], text=_answer_text(closed, view["locale"]))
        # Relative to this page, so it works behind a path prefix too.
        return page("offer_confirm", 200, view["locale"], offer=view, verb=verb, action=f"{verb}?sig={sig}")

    @app.post("/offers/{offer_id}/{verb}", response_class=HTMLResponse, tags=["offers"])
    async def act(request: Request, offer_id: OfferId, verb: Verb, sig: Sig = None) -> HTMLResponse:
        """The button of the confirmation page: accept or decline, then the answer the chat would give."""
        view = await _linked_offer(request, offer_id, verb, sig)
        if isinstance(view, HTMLResponse):
            return view
        outcome = await run_in_threadpool(customer_actions.decide_offer, ctx, offer_id, verb, customer_id=None,
                                          via="email", actor=f"customer:{view['customer_id']}")
        kick()
        return page("offer_result", 200, view["locale"], text=_answer_text(outcome, view["locale"]))
