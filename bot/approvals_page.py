"""The web approval queue: GET /approvals, and the forms that approve (as written or edited) or reject a draft.

Server-rendered HTML that works without JavaScript (the Content-Security-Policy allows no script at all);
every value printed is autoescaped. Auth follows the API: with no token configured the page is open; with
`api_token` or `api_tokens` set, a request needs a bearer token or the `backorder_session` cookie, which the
login form sets after checking the token. Seeing the queue needs the `read` scope, deciding `write`; a token
of `api_tokens` also needs the decider's staff id (the legacy `api_token` may still decide as `web`). The
cookie holds the token's name and an HMAC keyed by the token (with when it was issued), never the token.

Every decision form carries a CSRF token, an HMAC of the session and the draft id, checked before anything
is decided (SameSite=Strict on the cookie is a second line, not the only one). A request authenticated by
the bearer header needs none: a browser cannot attach that header to a cross-site form.

Who decides: the form's `staff_id` (remembered in a cookie), who must hold an approver role; left empty,
the decision is recorded as `web` (the page's operator). See docs/approvals.md, "Web queue".
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Callable, Iterable
from pathlib import Path as FsPath
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import FastAPI, Form, HTTPException, Path, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import FileSystemLoader, StrictUndefined
from jinja2.sandbox import SandboxedEnvironment
from sqlalchemy import select

from bot import scopes
from bot.drafts_api import acting
from bot.scopes import Caller, Needs
from prompts import TEMPLATE_DIR
from services import approvals
from services.context import Context
from services.drafts import STATUSES
from store import tables as t

WEB_ACTOR = "web"
SESSION_COOKIE = "backorder_session"
STAFF_COOKIE = "backorder_staff"
COOKIE_PATH = "/approvals"
SESSION_MAX_AGE = 12 * 3600  # seconds a login lasts
STAFF_MAX_AGE = 90 * 24 * 3600
MAX_PK = 2**63 - 1  # a BIGINT: a larger id cannot name a row
PAGE_LIMIT = 200
FLASH_MAX = 300
DONE = re.compile(r"^(approved|rejected):(\d{1,19})$")
FILTERS = ("pending", *[s for s in STATUSES if s != "pending"], "all")

DraftId = Annotated[int, Path(ge=1, le=MAX_PK)]


def _environment() -> SandboxedEnvironment:
    """HTML templates: autoescaped (prompts.environment() is for text messages and escapes nothing)."""
    return SandboxedEnvironment(loader=FileSystemLoader(FsPath(TEMPLATE_DIR) / "web"), autoescape=True,
                                undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)


ENV = _environment()


def _sign(key: str, *parts: object) -> str:
    msg = "|".join(str(p) for p in parts).encode()
    return hmac.new(key.encode(), msg, hashlib.sha256).hexdigest()


def _same(a: str, b: str) -> bool:
    """Constant-time equality that cannot raise on non-ASCII input (str compare_digest would)."""
    return secrets.compare_digest(a.encode("utf-8", "surrogateescape"), b.encode("utf-8", "surrogateescape"))


class Sessions:
    """Issue and check the page's session cookie, and the CSRF tokens bound to it."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    @property
    def guarded(self) -> bool:
        return scopes.guarded(self.ctx.settings)

    def issue(self, caller: Caller | None = None) -> str:
        """A new session value: `issued.nonce.name.sig` (guarded) or a random value (open: only for CSRF)."""
        nonce = secrets.token_urlsafe(24)
        if caller is None:
            return nonce
        issued = int(self.ctx.now().timestamp())
        sig = _sign(caller.secret, "backorder-web-session", issued, nonce, caller.name)
        return f"{issued}.{nonce}.{caller.name}.{sig}"

    def caller(self, value: str | None) -> Caller | None:
        """The token a valid, unexpired session cookie was signed in with (guarded apps only)."""
        if not self.guarded or not value or len(value) > 300 or value.count(".") != 3:
            return None
        issued, nonce, name, sig = value.split(".")
        caller = scopes.by_name(self.ctx.settings, name)
        if caller is None or not issued.isdigit() or not nonce:
            return None
        if not _same(sig, _sign(caller.secret, "backorder-web-session", issued, nonce, name)):
            return None
        age = self.ctx.now().timestamp() - int(issued)
        return caller if -300 <= age <= SESSION_MAX_AGE else None  # a little clock skew between processes is fine

    def valid(self, value: str | None) -> bool:
        if not self.guarded:
            return value is not None and re.fullmatch(r"[A-Za-z0-9_-]{32}", value) is not None
        return self.caller(value) is not None

    def bearer(self, request: Request) -> Caller | None:
        return scopes.from_header(self.ctx.settings, request) if self.guarded else None

    def csrf(self, session: str, target: int | str) -> str:
        name = session.split(".")[2] if session.count(".") == 3 else ""
        caller = scopes.by_name(self.ctx.settings, name) if self.guarded else None
        return _sign((caller.secret if caller else "") + "|csrf", "backorder-web-csrf", session, target)

    def csrf_ok(self, session: str | None, target: int | str, given: str) -> bool:
        return bool(session and given) and _same(given, self.csrf(session or "", target))

    def login(self, given: str) -> Caller | None:
        return scopes.identify(self.ctx.settings, given) if self.guarded else None


def _headers(nonce: str) -> dict[str, str]:
    """No script at all, styles only the page's own block, forms only to this origin, no framing."""
    csp = (f"default-src 'none'; style-src 'nonce-{nonce}'; form-action 'self'; frame-ancestors 'none'; "
           "base-uri 'none'; img-src 'self'")
    return {"Content-Security-Policy": csp, "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
            "Cache-Control": "no-store", "X-Frame-Options": "DENY"}


def _html(template: str, status_code: int = 200, headers: dict[str, str] | None = None, **values: Any) -> HTMLResponse:
    nonce = secrets.token_urlsafe(16)
    body = ENV.get_template(template).render(nonce=nonce, **values)
    return HTMLResponse(body, status_code=status_code, headers={**_headers(nonce), **(headers or {})})


def _set_cookie(response: Response, request: Request, name: str, value: str, max_age: int) -> None:
    response.set_cookie(name, value, max_age=max_age, path=COOKIE_PATH, httponly=True, samesite="strict",
                        secure=request.url.scheme == "https")


def _filter(status: str | None) -> str:
    return status if status in FILTERS else "pending"


def _back(status: str, **flash: str) -> str:
    query = {"status": status} if status != "pending" else {}
    return f"{COOKIE_PATH}?{urlencode({**query, **flash})}" if query or flash else COOKIE_PATH


def _customers(ctx: Context, ids: Iterable[str | None]) -> dict[str, str]:
    wanted = sorted({i for i in ids if i})
    if not wanted:
        return {}
    c = t.customers
    with ctx.engine.connect() as conn:
        return {r.customer_id: r.name for r in conn.execute(
            select(c.c.customer_id, c.c.name).where(c.c.customer_id.in_(wanted)))}


def _source(d: dict[str, Any]) -> dict[str, Any]:
    grounding = d.get("grounding") or {}
    return {"source": d["source"], "model": d.get("model"), "prompt_version": d.get("prompt_version"),
            "fallback_reason": grounding.get("fallback_reason"), "problems": len(grounding.get("problems") or ())}


def _flash(done: str | None, error: str | None) -> dict[str, str] | None:
    if error:
        return {"kind": "error", "text": error[:FLASH_MAX]}
    m = DONE.match(done or "")
    if m:
        return {"kind": "done", "text": f"Draft {m.group(2)} {m.group(1)}."}
    return None


def mount(app: FastAPI, ctx: Context, needs: Needs, kick: Callable[[], None]) -> None:
    """The page checks tokens itself, so it can also take the login cookie and answer a browser with the login
    form instead of a JSON 401: seeing needs `read`, deciding `write`. `kick` wakes the worker."""
    del needs  # same tokens, checked below in the page's own way
    sessions = Sessions(ctx)
    guarded = sessions.guarded

    def caller_of(request: Request) -> Caller | None:
        return sessions.bearer(request) or sessions.caller(request.cookies.get(SESSION_COOKIE))

    def signed_in(request: Request) -> bool:
        return not guarded or caller_of(request) is not None

    def lacks(request: Request, scope: str) -> str | None:
        """Why the signed-in token may not do this (None: it may)."""
        caller = caller_of(request)
        if caller is None or scope in caller.scopes:
            return None
        return f"The token {caller.name!r} lacks the {scope!r} scope this needs."

    def login_form(error: str | None = None, status_code: int = 401) -> HTMLResponse:
        return _html("login.html.j2", status_code=status_code, error=error,
                     headers={"WWW-Authenticate": "Bearer"} if status_code == 401 else None)

    def refuse(status_code: int, message: str) -> HTMLResponse:
        return _html("refused.html.j2", status_code=status_code, message=message)

    @app.get(COOKIE_PATH, response_class=HTMLResponse, include_in_schema=False)
    def approvals_page(request: Request, status: str | None = None, done: str | None = None,
                       error: str | None = None) -> Response:
        if not signed_in(request):
            return login_form()
        if (why := lacks(request, "read")) is not None:
            return refuse(403, why)
        shown = _filter(status)
        session = request.cookies.get(SESSION_COOKIE)
        fresh = None
        if not sessions.valid(session):
            session = fresh = sessions.issue()  # an open page, or a bearer client: a session for the forms
        drafts = approvals.list_drafts(ctx, None if shown == "all" else shown, limit=PAGE_LIMIT)
        names = _customers(ctx, (d["customer_id"] for d in drafts))
        rows = [{**d, "customer_name": names.get(d["customer_id"] or ""), "origin": _source(d),
                 "csrf": sessions.csrf(session or "", d["id"])} for d in drafts]
        flash = _flash(done, error)
        if status is not None and status not in FILTERS:
            flash = {"kind": "error", "text": f"status: {status[:40]!r} is not one of {', '.join(FILTERS)}"}
        response = _html("approvals.html.j2", drafts=rows, status=shown, filters=FILTERS, flash=flash,
                         staff_id=request.cookies.get(STAFF_COOKIE, "")[:100], guarded=guarded,
                         logout_csrf=sessions.csrf(session or "", "logout"), limit=PAGE_LIMIT,
                         max_chars=ctx.settings.drafts.max_chars)
        if fresh is not None:
            _set_cookie(response, request, SESSION_COOKIE, fresh, SESSION_MAX_AGE)
        return response

    @app.get(f"{COOKIE_PATH}/login", response_class=HTMLResponse, include_in_schema=False)
    def login_page(request: Request) -> Response:
        if signed_in(request):
            return RedirectResponse(COOKIE_PATH, status_code=303)
        return login_form(status_code=200)

    @app.post(f"{COOKIE_PATH}/login", response_class=HTMLResponse, include_in_schema=False)
    def login(request: Request, token: Annotated[str, Form(max_length=1000)] = "") -> Response:
        if not guarded:
            return RedirectResponse(COOKIE_PATH, status_code=303)
        caller = sessions.login(token)
        if caller is None:
            return login_form("That token is not the API token.")
        if "read" not in caller.scopes:
            return login_form(f"The token {caller.name!r} lacks the 'read' scope this page needs.", 403)
        response = RedirectResponse(COOKIE_PATH, status_code=303)
        _set_cookie(response, request, SESSION_COOKIE, sessions.issue(caller), SESSION_MAX_AGE)
        return response

    @app.post(f"{COOKIE_PATH}/logout", response_class=HTMLResponse, include_in_schema=False)
    def logout(request: Request, csrf: Annotated[str, Form(max_length=200)] = "") -> Response:
        if not sessions.csrf_ok(request.cookies.get(SESSION_COOKIE), "logout", csrf):
            return refuse(403, "The form's security token is missing or wrong: reload the page and try again.")
        response = RedirectResponse(COOKIE_PATH, status_code=303)
        response.delete_cookie(SESSION_COOKIE, path=COOKIE_PATH, httponly=True, samesite="strict",
                               secure=request.url.scheme == "https")
        return response

    def decide(request: Request, draft_id: int, csrf: str, staff_id: str, status: str,
               act: Callable[[approvals.Approver], Any], verb: str) -> Response:
        if not signed_in(request):
            return refuse(401, "Sign in first: open the approvals page.")
        if (why := lacks(request, "write")) is not None:
            return refuse(403, why)
        session = request.cookies.get(SESSION_COOKIE)
        if sessions.bearer(request) is None and not (sessions.valid(session)
                                                     and sessions.csrf_ok(session, draft_id, csrf)):
            return refuse(403, "The form's security token is missing or wrong: reload the page and try again.")
        back = _filter(status)
        staff_id = staff_id.strip()
        caller = caller_of(request)
        if not staff_id and caller is not None and caller.name != scopes.LEGACY:
            return RedirectResponse(_back(back, error="staff_id: give your staff id to decide"), 303)
        try:
            who = acting(ctx, staff_id) if staff_id else approvals.Approver(
                WEB_ACTOR, frozenset(ctx.settings.drafts.approver_roles))
        except HTTPException:
            response = RedirectResponse(_back(back, error=f"staff_id: no staff member {staff_id!r}"), 303)
            response.delete_cookie(STAFF_COOKIE, path=COOKIE_PATH, httponly=True, samesite="strict")
            return response
        try:
            act(who)
        except approvals.AlreadyDecided as exc:
            return RedirectResponse(_back(back, error=f"Draft {draft_id}: {exc}"), 303)
        except approvals.NotAllowed as exc:
            return RedirectResponse(_back(back, error=f"{who.staff_id} may not decide: {exc}"), 303)
        except approvals.BadEdit as exc:
            return RedirectResponse(_back(back, error=f"Draft {draft_id} not approved: {exc}"), 303)
        except approvals.DraftNotFound as exc:
            return RedirectResponse(_back(back, error=str(exc)), 303)
        kick()
        response = RedirectResponse(_back(back, done=f"{verb}:{draft_id}"), 303)
        if staff_id:
            _set_cookie(response, request, STAFF_COOKIE, staff_id, STAFF_MAX_AGE)
        else:
            response.delete_cookie(STAFF_COOKIE, path=COOKIE_PATH, httponly=True, samesite="strict")
        return response

    @app.post(f"{COOKIE_PATH}/{{draft_id}}/approve", response_class=HTMLResponse, include_in_schema=False)
    def approve(request: Request, draft_id: DraftId, csrf: Annotated[str, Form(max_length=200)] = "",
                text: Annotated[str | None, Form(max_length=20_000)] = None,
                staff_id: Annotated[str, Form(max_length=100)] = "",
                status: Annotated[str, Form(max_length=20)] = "pending") -> Response:
        def act(who: approvals.Approver) -> Any:
            return approvals.approve(ctx, draft_id, who, via="web", text=_edit(ctx, draft_id, text))

        return decide(request, draft_id, csrf, staff_id, status, act, "approved")

    @app.post(f"{COOKIE_PATH}/{{draft_id}}/reject", response_class=HTMLResponse, include_in_schema=False)
    def reject(request: Request, draft_id: DraftId, csrf: Annotated[str, Form(max_length=200)] = "",
               reason: Annotated[str, Form(max_length=500)] = "",
               staff_id: Annotated[str, Form(max_length=100)] = "",
               status: Annotated[str, Form(max_length=20)] = "pending") -> Response:
        def act(who: approvals.Approver) -> Any:
            return approvals.reject(ctx, draft_id, who, via="web", reason=reason.strip() or None)

        return decide(request, draft_id, csrf, staff_id, status, act, "rejected")


def _edit(ctx: Context, draft_id: int, text: str | None) -> str | None:
    """The textarea's text when it differs from the draft's; None (approve as written) when it does not.

    Browsers send a textarea's line breaks as CRLF and drop a leading newline, so the comparison is on
    the normalised, stripped text: a draft approved untouched is not recorded as edited.
    """
    if text is None:
        return None
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    current = approvals.get_draft(ctx, draft_id)["text"] or ""
    return None if text.strip() == current.strip() else text
