"""`backorder jobs …`: the scheduled jobs from a terminal. Each command's docstring is its --help text."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from prompts import render
from services import scheduler

jobs_app = typer.Typer(help="Scheduled jobs ([schedule] in the configuration).", no_args_is_help=True)


def _context():  # type: ignore[no-untyped-def]  # late import: the CLI module imports this one
    from backorder.cli import _context as make

    return make()


@jobs_app.command("list")
def jobs_list(
    as_json: Annotated[bool, typer.Option("--json", help="print JSON instead of a table")] = False,
) -> None:
    """Every job: its cron, next run, last run and how that went."""
    ctx = _context()
    rows = scheduler.listing(ctx)
    if as_json:
        typer.echo(json.dumps(rows, default=str, indent=2))
        return
    typer.echo(render("cli/jobs_list.txt.j2", jobs=rows, tz=ctx.settings.schedule.timezone))


@jobs_app.command("run")
def jobs_run(name: Annotated[str, typer.Argument(help="the job, as `backorder jobs list` names it")]) -> None:
    """Run one job now, once, through the same cluster-wide lock as the workers (it counts for its current
    slot). Exits 1 when the job fails or another worker is running it."""
    if name not in scheduler.REGISTRY:
        raise typer.BadParameter(f"no job {name!r}; jobs are {', '.join(scheduler.REGISTRY)}", param_hint="NAME")
    outcome = scheduler.run_now(_context(), name)
    typer.echo(render("cli/jobs_run.txt.j2", o=outcome))
    if outcome.status != "ok":
        raise typer.Exit(1)
