"""Jinja2 templates for every text the product shows: CLI story lines now, customer messages later."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from jinja2.sandbox import SandboxedEnvironment

TEMPLATE_DIR = Path(__file__).resolve().parent


Escape = Callable[[str], str]


@cache
def environment(escape: Escape | None = None) -> Environment:
    """Sandboxed and strict: a template that names a missing value fails loudly instead of printing ''.

    `escape`: applied to every string a template prints, the way HTML autoescaping is (e.g. Markdown
    escapes for Teams, so a customer name cannot turn into a link in a staff answer).
    """
    def finalize(value: Any) -> Any:
        return escape(value) if escape is not None and isinstance(value, str) else value

    return SandboxedEnvironment(loader=FileSystemLoader(TEMPLATE_DIR), undefined=StrictUndefined,
                                trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=False,
                                finalize=finalize if escape is not None else None)


def render(name: str, *, escape: Escape | None = None, **values: object) -> str:
    return environment(escape).get_template(name).render(**values).strip()
