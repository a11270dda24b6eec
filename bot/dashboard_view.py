"""Rendering of the dashboard's pages: autoescaped Jinja2 templates under prompts/web/dashboard*.

Every page carries a Content-Security-Policy that loads nothing from outside the app: the page's own
style block (by nonce), its one script from /dashboard/app.js, and connections back to this origin only.
"""

from __future__ import annotations

import secrets
from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi.responses import HTMLResponse
from jinja2 import FileSystemLoader, StrictUndefined
from jinja2.sandbox import SandboxedEnvironment

from prompts import TEMPLATE_DIR

SCRIPT = Path(TEMPLATE_DIR) / "web" / "dashboard.js"
NONE = "\u2013"  # an en dash where a figure has no value yet


def _num(value: Any) -> str:
    return NONE if value is None else f"{value:,.0f}"


def _money(value: Any) -> str:
    return NONE if value is None else f"{value:,.2f}"


def _pct(value: Any) -> str:
    return NONE if value is None else f"{value * 100:.1f}%"


def _duration(ms: Any) -> str:
    """Milliseconds in the unit a person reads best."""
    if ms is None:
        return NONE
    seconds = ms / 1000
    if seconds < 1:
        return f"{ms:.0f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _when(iso: str | None) -> str:
    if not iso:
        return NONE
    at = datetime.fromisoformat(iso)
    return at.strftime("%d %b %H:%M")


def _day(iso: str | None) -> str:
    if not iso:
        return NONE
    return datetime.fromisoformat(iso).strftime("%a %d %b")


def _scale(value: float | int | None, top: float | int | None, width: float) -> float:
    """The length of a bar for `value` when `top` fills `width` (at least a sliver for a non-zero value)."""
    if not value or not top:
        return 0.0
    return round(max(width * float(value) / float(top), 2.0), 1)


def _environment() -> SandboxedEnvironment:
    env = SandboxedEnvironment(loader=FileSystemLoader(Path(TEMPLATE_DIR) / "web"), autoescape=True,
                               undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters.update(num=_num, money=_money, pct=_pct, duration=_duration, when=_when, day=_day)
    env.globals.update(scale=_scale)
    return env


ENV = _environment()


def headers(nonce: str) -> dict[str, str]:
    csp = (f"default-src 'none'; style-src 'nonce-{nonce}'; script-src 'self'; connect-src 'self'; "
           "img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
    return {"Content-Security-Policy": csp, "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
            "Cache-Control": "no-store", "X-Frame-Options": "DENY"}


def render(template: str, **values: Any) -> str:
    return ENV.get_template(template).render(**values)


def page(template: str, status_code: int = 200, **values: Any) -> HTMLResponse:
    nonce = secrets.token_urlsafe(16)
    return HTMLResponse(render(template, nonce=nonce, **values), status_code=status_code, headers=headers(nonce))


def figures(snapshot: dict[str, Any]) -> str:
    """The part of the page a live update replaces: the same for every viewer (the script enables the task
    buttons for a viewer who signed in with a staff id)."""
    return render("dashboard_figures.html.j2", s=snapshot)
