"""Cron-style jobs from `[schedule]`, each run once cluster-wide per slot, caught up once after downtime.

A job's *slot* is the latest instant its cron expression names that is not after now, read in
`[schedule] timezone` (cronsim does the DST work: a time skipped in spring runs at the first minute that
exists, a time repeated in autumn runs once, at its first occurrence). `job_runs.last_slot` is the slot a
job last ran for; a tick runs every job whose slot is later. Several missed slots (every worker down)
are one slot behind as much as one: the job runs once, for the latest.

Once cluster-wide: on PostgreSQL a worker runs a job only while it holds the job's advisory lock (a
session lock, so it also keeps a second worker from starting the same job while a long run is still
going), and re-reads job_runs under it; on SQLite BEGIN IMMEDIATE serialises the claim. The claim
commits before the job runs, so each slot runs at most once: a worker that dies mid-run does not get
the slot run again, the next slot runs as usual (every job is safe to run again: each decides itself
what is due, e.g. digests by their own records).

A job seen for the first time (a fresh install, a newly added job) starts from its current slot and
first runs at its next one: a deployment at 14:00 does not start the nightly batch allocation at once.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from cronsim import CronSim
from sqlalchemy import Connection, select, update

from services.context import Context
from store import tables as t
from store.db import unit_of_work
from store.locks import held_for_run
from store.upsert import insert_ignore

log = logging.getLogger(__name__)

JobFn = Callable[[Context], object]


# -- the jobs: other parts' functions, imported when the job runs (a missing one fails that job only) ---------
def _allocate_nightly(ctx: Context) -> object:
    from services.batch import allocate_all

    return allocate_all(ctx)


def _overdue_check(ctx: Context) -> object:
    from services.workflow import check_overdue

    return check_overdue(ctx)


def _digests(ctx: Context) -> object:
    from services import digests

    return digests.run_due(ctx)


def _drafts(ctx: Context) -> object:
    from services import drafts

    return {"expired": drafts.expire_due(ctx), "escalated": drafts.escalate_due(ctx)}


def _weekly_report(ctx: Context) -> object:
    from services.weekly_report import deliver_due

    return deliver_due(ctx)


def _dead_letter_retry(ctx: Context) -> object:
    from services.redelivery import retry_transient

    return retry_transient(ctx)


def _retention(ctx: Context) -> object:
    from services.retention import prune

    return prune(ctx)


def _task_escalation(ctx: Context) -> object:
    from services.tasks import escalate_due

    return escalate_due(ctx)


def _reorder_check(ctx: Context) -> object:
    from services.reorder import check

    return check(ctx)


# Names and default crons are in backorder/config.py (DEFAULT_JOBS); a unit test keeps the two in step.
REGISTRY: dict[str, JobFn] = {
    "allocate_nightly": _allocate_nightly,
    "overdue_check": _overdue_check,
    "digests": _digests,
    "drafts": _drafts,
    "weekly_report": _weekly_report,
    "dead_letter_retry": _dead_letter_retry,
    "retention": _retention,
    "task_escalation": _task_escalation,
    "reorder_check": _reorder_check,
}


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one run did: status ok | failed, or busy (another worker holds the job)."""

    job: str
    slot: datetime | None
    status: str
    error: str | None = None
    result: object = None


def default_owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


# -- slots ---------------------------------------------------------------------------------------------------
def latest_slot(cron: str, now: datetime, tz: ZoneInfo) -> datetime:
    """The latest instant `cron` (read in `tz`) names that is not after `now`, in UTC."""
    # cronsim's reverse iteration starts one second before its start: start one second after now.
    start = (now.astimezone(UTC).replace(microsecond=0) + timedelta(seconds=1)).astimezone(tz)
    return min(next(CronSim(cron, start, reverse=True)).astimezone(UTC), now)


def next_slot(cron: str, now: datetime, tz: ZoneInfo) -> datetime:
    """The first instant `cron` names after `now`, in UTC."""
    return next(CronSim(cron, now.astimezone(UTC).replace(microsecond=0).astimezone(tz))).astimezone(UTC)


# -- running -------------------------------------------------------------------------------------------------
def run_due(ctx: Context, jobs: Mapping[str, JobFn] = REGISTRY, owner: str | None = None) -> list[Outcome]:
    """One tick: run every enabled job whose slot has not run yet; returns what ran (in `jobs` order).

    A failing job is logged and recorded `failed`; the others still run.
    """
    cfg = ctx.settings.schedule
    tz = ZoneInfo(cfg.timezone)
    now = ctx.now()
    owner = owner or default_owner()
    slots = {name: latest_slot(cfg.jobs[name].cron, now, tz)
             for name in jobs if name in cfg.jobs and cfg.jobs[name].enabled}
    if not slots:
        return []
    with ctx.engine.connect() as conn:  # a plain read: most ticks find nothing due and take no lock
        last = dict(conn.execute(select(t.job_runs.c.job, t.job_runs.c.last_slot)).tuples().all())
    new = [name for name in slots if name not in last]
    if new:
        with unit_of_work(ctx.engine) as conn:
            insert_ignore(conn, t.job_runs, [{"job": n, "last_slot": slots[n], "runs": 0} for n in new], ["job"])
    ran: list[Outcome] = []
    for name, slot in slots.items():
        if name in new or (last[name] is not None and last[name] >= slot):
            continue
        outcome = _run(ctx, name, jobs[name], slot, owner, force=False)
        if outcome is not None and outcome.status != "busy":
            ran.append(outcome)
    return ran


def run_now(ctx: Context, name: str, jobs: Mapping[str, JobFn] = REGISTRY, owner: str | None = None) -> Outcome:
    """Run one job now, whatever its schedule (enabled or not), through the same lock; it counts for the
    current slot, so the tick does not run it again for that slot. Status `busy`: another worker runs it."""
    if name not in jobs:
        raise KeyError(name)
    cfg = ctx.settings.schedule
    job = cfg.jobs.get(name)
    slot = latest_slot(job.cron, ctx.now(), ZoneInfo(cfg.timezone)) if job is not None else None
    outcome = _run(ctx, name, jobs[name], slot, owner or default_owner(), force=True)
    assert outcome is not None  # a forced run always runs, or is busy
    return outcome


def _run(ctx: Context, name: str, fn: JobFn, slot: datetime | None, owner: str, force: bool) -> Outcome | None:
    with held_for_run(ctx.engine, f"job:{name}") as got:
        if not got:
            log.info("job %s: another worker is running it", name)
            return Outcome(name, slot, "busy")
        started = ctx.now()
        with unit_of_work(ctx.engine) as conn:
            if not _claim(conn, name, slot, owner, started, force):
                return None
        log.info("job %s: running for slot %s", name, slot.isoformat() if slot else "-")
        try:
            result, status, error = fn(ctx), "ok", None
        except Exception as exc:  # one job's failure must not stop the others, nor the worker
            log.exception("job %s failed", name)
            result, status, error = None, "failed", f"{type(exc).__name__}: {exc}"[:2000]
        j = t.job_runs
        with unit_of_work(ctx.engine) as conn:
            conn.execute(update(j).where(j.c.job == name, j.c.owner == owner, j.c.started_at == started)
                         .values(status=status, error=error, finished_at=ctx.now()))
        return Outcome(name, slot, status, error, result)


def _claim(conn: Connection, name: str, slot: datetime | None, owner: str, now: datetime, force: bool) -> bool:
    """Under the lock (or SQLite's write lock): mark the slot taken unless another worker just ran it."""
    j = t.job_runs
    row = conn.execute(select(j.c.last_slot, j.c.runs).where(j.c.job == name)).first()
    last = row.last_slot if row is not None else None
    if not force and last is not None and slot is not None and last >= slot:
        return False
    values: dict[str, Any] = {"last_slot": max((s for s in (last, slot) if s is not None), default=None),
                              "started_at": now, "finished_at": None, "status": "running", "error": None,
                              "owner": owner}
    if row is None:
        conn.execute(j.insert().values(job=name, runs=1, **values))
    else:
        conn.execute(update(j).where(j.c.job == name).values(runs=j.c.runs + 1, **values))
    return True


class Ticker:
    """Calls `tick` every `every_s` seconds in a thread of its own until stopped (the worker's jobs)."""

    def __init__(self, tick: Callable[[], object], every_s: float) -> None:
        self._tick = tick
        self._every_s = every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="scheduler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Waits for a job that is running to finish (a daemon thread: a process exiting does not wait)."""
        self._stop.set()
        self._thread.join(timeout=60)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._tick()
            except Exception:  # the store restarting, say: the next tick tries again
                log.exception("scheduler tick failed")
            self._stop.wait(self._every_s)


# -- listing -------------------------------------------------------------------------------------------------
def listing(ctx: Context, jobs: Mapping[str, JobFn] = REGISTRY) -> list[dict[str, Any]]:
    """Every job: its cron, whether enabled, its next run, and its last run as job_runs has it."""
    cfg = ctx.settings.schedule
    tz = ZoneInfo(cfg.timezone)
    now = ctx.now()
    with ctx.engine.connect() as conn:
        runs = {r.job: r for r in conn.execute(select(t.job_runs))}
    out = []
    for name in jobs:
        job = cfg.jobs.get(name)
        run = runs.get(name)
        out.append({
            "job": name, "cron": job.cron if job else None, "enabled": bool(job and job.enabled),
            "next_run": next_slot(job.cron, now, tz).astimezone(tz) if job and job.enabled else None,
            "last_slot": run.last_slot.astimezone(tz) if run and run.last_slot else None,
            "last_run": run.started_at.astimezone(tz) if run and run.started_at else None,
            "finished_at": run.finished_at.astimezone(tz) if run and run.finished_at else None,
            "status": run.status if run else None, "error": run.error if run else None,
            "runs": run.runs if run else 0, "owner": run.owner if run else None,
        })
    return out
