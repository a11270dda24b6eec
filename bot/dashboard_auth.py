"""Who may see the dashboard, and who acts from it.

Never open to the internet by default:
- with `api_token` set, a request needs the bearer header or the dashboard's session cookie, which the login
  form sets after checking the token. The cookie is `issued.staff.signature`: an HMAC-SHA256 keyed by the
  token over when it was issued and the staff id given at sign-in (never the token itself); HttpOnly,
  SameSite=Strict, scoped to /dashboard, and it expires after `[dashboard] session_hours`.
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


class Sessions:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._local_key = secrets.token_hex(32)

    @property
    def guarded(self) -> bool:
        return bool(self.ctx.settings.api_token)

    @property
    def key(self) -> str:
        return self.ctx.settings.api_token or self._local_key

    @property
    def max_age(self) -> int:
        return int(self.ctx.settings.dashboard.session_hours * 3600)

    def _sign(self, *parts: object) -> str:
        msg = "|".join(str(p) for p in ("backorder-dashboard", *parts)).encode()
        return hmac.new(self.key.encode(), msg, hashlib.sha256).hexdigest()

    def issue(self, staff_id: str) -> str:
        issued = int(self.ctx.now().timestamp())
        staff = base64.urlsafe_b64encode(staff_id.encode()).decode().rstrip("=")
        return f"{issued}.{staff}.{self._sign(issued, staff)}"

    def staff_of(self, value: str | None) -> str | None:
        """The staff id of a valid, unexpired session cookie ("" when none was given); None when not valid."""
        if not value or len(value) > 400 or value.count(".") != 2:
            return None
        issued, staff, sig = value.split(".")
        if not issued.isdigit() or not _same(sig, self._sign(issued, staff)):
            return None
        age = self.ctx.now().timestamp() - int(issued)
        if not -300 <= age <= self.max_age:  # a little clock skew between processes is fine
            return None
        try:
            return base64.urlsafe_b64decode(staff + "=" * (-len(staff) % 4)).decode()
        except (ValueError, UnicodeDecodeError):
            return None

    def bearer_ok(self, request: Request) -> bool:
        scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
        token = self.ctx.settings.api_token
        return bool(token and scheme.lower() == "bearer" and _same(credentials.strip(), token))

    def login_ok(self, given: str) -> bool:
        token = self.ctx.settings.api_token
        return bool(token) and _same(given, token or "")

    def viewer(self, request: Request) -> Viewer | None:
        """Who is asking, or None when they may not see the dashboard."""
        cookie = request.cookies.get(COOKIE, "")
        staff = self.staff_of(cookie)
        if self.guarded:
            if staff is not None:
                return Viewer(staff, "session", cookie)
            if self.bearer_ok(request):
                return Viewer(request.headers.get("x-staff-id", "")[:STAFF_MAX], "bearer", "")
            return None
        if not loopback(request):
            return None
        return Viewer(staff or "", "loopback", cookie if staff is not None else "")

    def csrf(self, viewer: Viewer) -> str:
        return self._sign("csrf", viewer.session or "no-session", viewer.staff_id)

    def csrf_ok(self, viewer: Viewer, given: str) -> bool:
        return viewer.via == "bearer" or (bool(given) and _same(given, self.csrf(viewer)))

    def set_cookie(self, response: Response, request: Request, value: str) -> None:
        response.set_cookie(COOKIE, value, max_age=self.max_age, path=COOKIE_PATH, httponly=True,
                            samesite="strict", secure=request.url.scheme == "https")

    def clear_cookie(self, response: Response, request: Request) -> None:
        response.delete_cookie(COOKIE, path=COOKIE_PATH, httponly=True, samesite="strict",
                               secure=request.url.scheme == "https")
