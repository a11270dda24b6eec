"""Who may see the dashboard, and who acts from it.

Never open to the internet by default:
- with a token configured (`api_token` or `api_tokens`), a request needs a bearer token of the `read` scope or
  the dashboard's session cookie, which the login form sets after checking such a token. The cookie is
  `issued.staff.signature`: an HMAC-SHA256 keyed by that token over when it was issued, the staff id
  given at sign-in and the token's name (never the token itself); HttpOnly, SameSite=Strict, scoped to
  /dashboard, and it expires after `[dashboard] session_hours`. The session has the scopes its token has now
  (removing the token from the settings ends it); acting on tasks needs `write` and a staff id.
- with no token, only clients on the loopback interface (127.0.0.1, ::1) are answered; the cookie then only
  carries the staff id, signed with a key made at start-up.

Actions (taking or finishing a task) also need the page's CSRF token in a header and a same-origin request.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import secrets
from dataclasses import dataclass

from fastapi import Request, Response

from bot import scopes
from bot.scopes import Caller
from services.context import Context

COOKIE = "backorder_dashboard"
COOKIE_PATH = "/dashboard"
STAFF_MAX = 100


def _same(a: str, b: str) -> bool:
    return secrets.compare_digest(a.encode("utf-8", "surrogateescape"), b.encode("utf-8", "surrogateescape"))


def loopback(request: Request) -> bool:
    host = request.client.host if request.client else ""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True, slots=True)
class Viewer:
    """A request that may see the dashboard: the staff id given at sign-in ("" when none), and how it got in."""

    staff_id: str
    via: str  # session | bearer | loopback
    session: str  # the cookie value ("" for bearer/loopback without one): CSRF tokens are bound to it
    scopes: frozenset[str] = frozenset(scopes.API_SCOPES)  # those of the token it came in with; all on loopback
    token: str = ""  # the name of the token its session was signed with: it keys the CSRF tokens


class Sessions:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._local_key = secrets.token_hex(32)

    @property
    def guarded(self) -> bool:
        return scopes.guarded(self.ctx.settings)

    def _signers(self) -> list[tuple[str, str]]:
        """(token name, key) pairs that may have signed a session: each configured token, or the start-up key."""
        if not self.guarded:
            return [("", self._local_key)]
        return [(c.name, c.secret) for c in scopes.callers(self.ctx.settings)]

    @property
    def max_age(self) -> int:
        return int(self.ctx.settings.dashboard.session_hours * 3600)

    def _sign(self, key: str, *parts: object) -> str:
        msg = "|".join(str(p) for p in ("backorder-dashboard", *parts)).encode()
        return hmac.new(key.encode(), msg, hashlib.sha256).hexdigest()

    def issue(self, staff_id: str, caller: Caller | None = None) -> str:
        """A session for the token signed in with (default: the legacy `api_token`)."""
        issued = int(self.ctx.now().timestamp())
        staff = base64.urlsafe_b64encode(staff_id.encode()).decode().rstrip("=")
        if caller is None and self.guarded:
            caller = scopes.by_name(self.ctx.settings, scopes.LEGACY)
            if caller is None:
                raise ValueError("name the token a session is issued for")
        name, key = (caller.name, caller.secret) if caller is not None else ("", self._local_key)
        return f"{issued}.{staff}.{self._sign(key, issued, staff, name)}"

    def session_of(self, value: str | None) -> tuple[str, str] | None:
        """The staff id ("" when none was given) and the signing token's name ("" unguarded) of a valid,
        unexpired session cookie; None when not valid. Every token's signature is tried: the cookie does not
        name its token, and a token removed from the settings ends its sessions."""
        if not value or len(value) > 400 or value.count(".") != 2:
            return None
        issued, staff, sig = value.split(".")
        if not issued.isdigit():
            return None
        signer = None
        for name, key in self._signers():
            if _same(sig, self._sign(key, issued, staff, name)):
                signer = name
        if signer is None:
            return None
        age = self.ctx.now().timestamp() - int(issued)
        if not -300 <= age <= self.max_age:  # a little clock skew between processes is fine
            return None
        try:
            return base64.urlsafe_b64decode(staff + "=" * (-len(staff) % 4)).decode(), signer
        except (ValueError, UnicodeDecodeError):
            return None

    def staff_of(self, value: str | None) -> str | None:
        found = self.session_of(value)
        return found[0] if found is not None else None

    def bearer(self, request: Request) -> Caller | None:
        return scopes.from_header(self.ctx.settings, request) if self.guarded else None

    def login(self, given: str) -> Caller | None:
        """The token given at sign-in, when it is a configured one."""
        return scopes.identify(self.ctx.settings, given) if self.guarded else None

    def viewer(self, request: Request) -> Viewer | None:
        """Who is asking, or None when they may not see the dashboard (a known token without `read`: 403)."""
        cookie = request.cookies.get(COOKIE, "")
        session = self.session_of(cookie)
        if self.guarded:
            caller = scopes.by_name(self.ctx.settings, session[1]) if session is not None else None
            if session is not None and caller is not None:
                return _reading(Viewer(session[0], "session", cookie, caller.scopes, caller.name), caller)
            caller = self.bearer(request)
            if caller is not None:
                staff = request.headers.get("x-staff-id", "")[:STAFF_MAX]
                return _reading(Viewer(staff, "bearer", "", caller.scopes), caller)
            return None
        if not loopback(request):
            return None
        staff_id = session[0] if session is not None else None
        return Viewer(staff_id or "", "loopback", cookie if staff_id is not None else "")

    def csrf(self, viewer: Viewer) -> str:
        """Keyed by the session's token (a bearer request needs none: a browser cannot forge its header)."""
        caller = scopes.by_name(self.ctx.settings, viewer.token) if viewer.token else None
        key = caller.secret if caller is not None else self._local_key
        return self._sign(key, "csrf", viewer.session or "no-session", viewer.staff_id)

    def csrf_ok(self, viewer: Viewer, given: str) -> bool:
        return viewer.via == "bearer" or (bool(given) and _same(given, self.csrf(viewer)))

    def set_cookie(self, response: Response, request: Request, value: str) -> None:
        response.set_cookie(COOKIE, value, max_age=self.max_age, path=COOKIE_PATH, httponly=True,
                            samesite="strict", secure=request.url.scheme == "https")

    def clear_cookie(self, response: Response, request: Request) -> None:
        response.delete_cookie(COOKIE, path=COOKIE_PATH, httponly=True, samesite="strict",
                               secure=request.url.scheme == "https")


def _reading(viewer: Viewer, caller: Caller) -> Viewer:
    if "read" not in viewer.scopes:
        raise scopes.lacking(caller, "read")
    return viewer
