"""Jinja2 templates for every text the product shows: CLI story lines now, customer messages later."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from jinja2.sandbox import SandboxedEnvironment

TEMPLATE_DIR = Path(__file__).resolve().parent


@cache
def environment() -> Environment:
    """Sandboxed and strict: a template that names a missing value fails loudly instead of printing ''."""
    return SandboxedEnvironment(loader=FileSystemLoader(TEMPLATE_DIR), undefined=StrictUndefined,
                                trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=False)


def render(name: str, **values: object) -> str:
    return environment().get_template(name).render(**values).strip()
