"""The one exception intake raises for bad input."""

from __future__ import annotations

from typing import Any

ErrorDict = dict[str, Any]


def _render(error: ErrorDict) -> str:
    loc = str(error.get("loc", ""))
    msg = str(error.get("msg", ""))
    if loc.startswith("row ") and "." in loc:
        row, column = loc.split(".", 1)
        return f"{row}, column {column}: {msg}"
    return f"{loc}: {msg}" if loc else msg


class EventValidationError(ValueError):
    """Input that cannot become canonical events.

    `errors` lists EVERY problem found, each a dict {"loc", "msg", "type"}:
    loc is a dotted string such as "[3].data.lines.0.qty" (events), "row 7.qty" (CSV)
    or "body" (the request as a whole); msg is the reason; type a stable machine code.
    """

    def __init__(self, errors: list[ErrorDict]) -> None:
        self.errors: list[ErrorDict] = errors
        shown = "\n".join(f"  {_render(e)}" for e in errors[:20])
        more = f"\n  ... and {len(errors) - 20} more" if len(errors) > 20 else ""
        noun = "error" if len(errors) == 1 else "errors"
        super().__init__(f"{len(errors)} validation {noun}:\n{shown}{more}")
