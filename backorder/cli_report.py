"""`backorder report …`: the weekly backorder report from a terminal. Each command's docstring is its --help text."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from prompts import render

report_app = typer.Typer(help="Reports on backorders.", no_args_is_help=True)
FORMATS = ("md", "html", "csv", "pdf")


def _context():  # type: ignore[no-untyped-def]  # late import: the CLI module imports this one
    from backorder.cli import _context as make

    return make()


@report_app.command("weekly")
def weekly(
    fmt: Annotated[str, typer.Option("--format", help="md, html, csv or pdf")] = "md",
    week: Annotated[str | None, typer.Option(help="ISO week, e.g. 2026-W09; default: the last complete week")] = None,
    out: Annotated[Path | None, typer.Option(help="write here; md and csv go to stdout without it")] = None,
) -> None:
    """The weekly backorder report: trend, aging, revenue at risk, delays, cycle times, fill rate and more.

    html and pdf are files: without --out they are written to backorder-report-<week>.<format> here. An
    html file embeds its charts (data: URIs), so it stands alone.
    """
    from reporting import formats  # matplotlib: loaded only when a report is made
    from services import weekly_report

    if fmt not in FORMATS:
        raise typer.BadParameter(f"{fmt!r} is not one of {', '.join(FORMATS)}", param_hint="--format")
    ctx = _context()
    try:
        figures = weekly_report.build(ctx, week)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--week") from None
    data = formats.render_format(figures, fmt)
    if out is None and fmt in ("md", "csv"):
        typer.echo(data.decode(), nl=False)
        return
    path = out or Path(formats.file_name(figures, fmt))
    path.write_bytes(data)
    typer.echo(render("cli/report_written.txt.j2", path=str(path), week=figures["week"], fmt=fmt,
                      size=len(data)), err=True)
