"""The templates of prompts/report/ and the filters that print a report's numbers."""

from __future__ import annotations

import re
from datetime import datetime
from functools import cache
from typing import Any

from jinja2 import FileSystemLoader, StrictUndefined
from jinja2.sandbox import SandboxedEnvironment
from markupsafe import Markup

from prompts import TEMPLATE_DIR

DASH = "\u2013"  # an en dash where a figure has no value
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]<>()#+!|])")


def money(v: Any) -> str:
    return DASH if v is None else f"{float(v):,.2f}"


def num(v: Any) -> str:
    if v is None:
        return DASH
    return f"{v:,}" if isinstance(v, int) else f"{float(v):,.1f}"


def pct(v: Any) -> str:
    return DASH if v is None else f"{float(v) * 100:.1f}%"


def when(v: str) -> str:
    return datetime.fromisoformat(v).strftime("%Y-%m-%d %H:%M UTC")


def md(v: Any) -> str:
    """Markdown-escape a value from the store (a SKU or customer name must not become markup or a table cell)."""
    return _MD_SPECIAL.sub(r"\\\1", str(v)).replace("\n", " ")


def _env(html: bool) -> SandboxedEnvironment:
    env = SandboxedEnvironment(loader=FileSystemLoader(TEMPLATE_DIR / "report"), undefined=StrictUndefined,
                               autoescape=html, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
    env.filters.update(money=money, num=num, pct=pct, when=when, md=md)
    return env


@cache
def environment(html: bool = False) -> SandboxedEnvironment:
    return _env(html)


def render(name: str, **values: Any) -> str:
    return environment(name.endswith(".html.j2")).get_template(name).render(**values)


def labels() -> dict[str, str]:
    """Chart titles and axis labels (prompts/report/labels.txt.j2: `key: text` lines)."""
    out = {}
    for line in render("labels.txt.j2").splitlines():
        key, sep, text = line.partition(":")
        if sep:
            out[key.strip()] = text.strip()
    return out


def safe(html: str) -> Markup:
    """HTML already escaped by its maker (markdown-it with raw HTML off)."""
    return Markup(html)  # markdown-it escapes every value it prints
