"""The scheduler on SQLite and PostgreSQL: once per slot, once cluster-wide, caught up once, failures kept apart."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from backorder.cli import app
from backorder.config import load_settings
from services import scheduler
from services.context import Context
from services.worker import jobs as worker_jobs
from store import tables as t
from store.db import make_engine

HOURLY = {"cron": "0 * * * *"}


def scheduled(ctx: Context, engine: Any = None, **schedule: Any) -> Context:
    settings = load_settings(database_url=ctx.settings.database_url, schedule=schedule)
    return Context(engine=engine or ctx.engine, settings=settings, clock=ctx.clock)


def job_row(ctx: Context, name: str) -> dict[str, Any]:
    with ctx.engine.connect() as conn:
        return dict(conn.execute(select(t.job_runs).where(t.job_runs.c.job == name)).mappings().one())


def counting(calls: list[str], name: str) -> Callable[[Context], object]:
    def run(ctx: Context) -> object:
        calls.append(name)
        return len(calls)
    return run


def at(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_a_new_job_starts_from_its_current_slot_and_then_runs_once_per_slot(ctx: Context, clock: Any) -> None:
    sctx = scheduled(ctx, jobs={"retention": HOURLY})
    calls: list[str] = []
    jobs = {"retention": counting(calls, "retention")}
    assert scheduler.run_due(sctx, jobs) == []  # 09:00: seen for the first time, not run
    row = job_row(sctx, "retention")
    assert (row["last_slot"], row["runs"], row["status"], calls) == (at(2026, 3, 2, 9), 0, None, [])
    clock.now = at(2026, 3, 2, 9, 59)
    assert scheduler.run_due(sctx, jobs) == []
    clock.now = at(2026, 3, 2, 10, 0, 20)
    [ran] = scheduler.run_due(sctx, jobs, owner="w1")
    assert (ran.job, ran.slot, ran.status, ran.result) == ("retention", at(2026, 3, 2, 10), "ok", 1)
    clock.now = at(2026, 3, 2, 10, 30)
    assert scheduler.run_due(sctx, jobs) == []  # same slot: not again
    row = job_row(sctx, "retention")
    assert calls == ["retention"]
    assert (row["last_slot"], row["runs"], row["status"], row["owner"], row["error"]) == (
        at(2026, 3, 2, 10), 1, "ok", "w1", None)
    assert (row["started_at"], row["finished_at"]) == (at(2026, 3, 2, 10, 0, 20), at(2026, 3, 2, 10, 0, 20))


def test_a_worker_down_for_several_slots_catches_up_once(ctx: Context, clock: Any) -> None:
    sctx = scheduled(ctx, jobs={"retention": HOURLY, "allocate_nightly": {"cron": "0 2 * * *"}})
    calls: list[str] = []
    jobs = {"retention": counting(calls, "retention"), "allocate_nightly": counting(calls, "allocate_nightly")}
    scheduler.run_due(sctx, jobs)
    clock.now = at(2026, 3, 5, 14, 30)  # three nights and 77 hourly slots later
    ran = scheduler.run_due(sctx, jobs)
    assert [(o.job, o.slot) for o in ran] == [("retention", at(2026, 3, 5, 14)),
                                              ("allocate_nightly", at(2026, 3, 5, 2))]
    assert scheduler.run_due(sctx, jobs) == []
    assert sorted(calls) == ["allocate_nightly", "retention"]
    assert job_row(sctx, "retention")["runs"] == 1 and job_row(sctx, "allocate_nightly")["runs"] == 1


def test_a_failing_job_is_recorded_and_the_others_still_run(ctx: Context, clock: Any) -> None:
    sctx = scheduled(ctx, jobs={"retention": HOURLY, "digests": HOURLY, "drafts": HOURLY})
    calls: list[str] = []

    def broken(_ctx: Context) -> object:
        raise RuntimeError("the disk is full")

    jobs = {"retention": counting(calls, "retention"), "digests": broken, "drafts": counting(calls, "drafts")}
    scheduler.run_due(sctx, jobs)
    clock.now = at(2026, 3, 2, 10, 1)
    ran = scheduler.run_due(sctx, jobs)
    assert [(o.job, o.status) for o in ran] == [("retention", "ok"), ("digests", "failed"), ("drafts", "ok")]
    assert calls == ["retention", "drafts"]
    row = job_row(sctx, "digests")
    assert (row["status"], row["error"], row["last_slot"], row["finished_at"]) == (
        "failed", "RuntimeError: the disk is full", at(2026, 3, 2, 10), at(2026, 3, 2, 10, 1))
    clock.now = at(2026, 3, 2, 10, 30)
    assert scheduler.run_due(sctx, jobs) == []  # a failed slot waits for the next one, not every tick
    clock.now = at(2026, 3, 2, 11, 0)
    assert [(o.job, o.status) for o in scheduler.run_due(sctx, jobs)] == [
        ("retention", "ok"), ("digests", "failed"), ("drafts", "ok")]
    assert job_row(sctx, "digests")["runs"] == 2


def test_disabled_jobs_do_not_run_and_run_now_runs_any_job_once_for_its_slot(ctx: Context, clock: Any) -> None:
    sctx = scheduled(ctx, jobs={"retention": {"cron": "0 * * * *", "enabled": False}, "drafts": HOURLY})
    calls: list[str] = []
    jobs = {"retention": counting(calls, "retention"), "drafts": counting(calls, "drafts")}
    scheduler.run_due(sctx, jobs)
    clock.now = at(2026, 3, 2, 12, 5)
    done = scheduler.run_now(sctx, "drafts", jobs, owner="cli")
    assert (done.status, done.slot) == ("ok", at(2026, 3, 2, 12))
    assert scheduler.run_due(sctx, jobs) == []  # the hand run counted for the 12:00 slot
    assert scheduler.run_now(sctx, "retention", jobs).status == "ok"  # by hand, even disabled
    assert calls == ["drafts", "retention"]
    assert (job_row(sctx, "drafts")["owner"], job_row(sctx, "drafts")["runs"]) == ("cli", 1)
    with pytest.raises(KeyError):
        scheduler.run_now(sctx, "no_such_job", jobs)


def test_the_schedule_time_zone_and_daylight_saving(ctx: Context, clock: Any) -> None:
    sctx = scheduled(ctx, timezone="Europe/Berlin", jobs={"retention": {"cron": "30 2 * * *"}})
    calls: list[str] = []
    jobs = {"retention": counting(calls, "retention")}
    clock.now = at(2026, 3, 28, 12)
    scheduler.run_due(sctx, jobs)
    slots = []
    for minutes in range(0, 5 * 60, 15):  # every quarter hour through the night the clocks go forward
        clock.now = at(2026, 3, 28, 22) + timedelta(minutes=minutes)
        slots += [o.slot for o in scheduler.run_due(sctx, jobs)]
    assert slots == [at(2026, 3, 29, 1, 0)]  # 02:30 does not exist that night: 03:00 CEST, the first minute after
    clock.now = at(2026, 10, 24, 12)
    assert [o.slot for o in scheduler.run_due(sctx, jobs)] == [at(2026, 10, 24, 0, 30)]  # months later: once
    slots = []
    for minutes in range(0, 5 * 60, 15):  # and the night they go back
        clock.now = at(2026, 10, 24, 22) + timedelta(minutes=minutes)
        slots += [o.slot for o in scheduler.run_due(sctx, jobs)]
    assert slots == [at(2026, 10, 25, 0, 30)]  # 02:30 CEST; 02:30 CET an hour later is the same slot
    assert len(calls) == 3


def test_two_workers_racing_run_a_job_once(ctx: Context, clock: Any, database_url: str) -> None:
    engines = [make_engine(database_url) for _ in range(2)]
    try:
        workers = [scheduled(ctx, engine=e, jobs={"retention": HOURLY}) for e in engines]
        calls: list[str] = []
        release = threading.Event()

        def slow(_ctx: Context) -> object:
            calls.append(threading.current_thread().name)
            release.wait(30)  # held until the other worker has had its go
            return None

        jobs = {"retention": slow}
        scheduler.run_due(workers[0], jobs)
        clock.now = at(2026, 3, 2, 10, 0)
        start = threading.Barrier(2)
        results: dict[str, list[scheduler.Outcome]] = {}

        def tick(i: int) -> None:
            start.wait()
            results[f"w{i}"] = scheduler.run_due(workers[i], jobs, owner=f"w{i}")

        threads = [threading.Thread(target=tick, args=(i,), name=f"w{i}") for i in range(2)]
        for th in threads:
            th.start()
        while all(th.is_alive() for th in threads):  # one of them runs the job and waits in it
            threading.Event().wait(0.01)
        release.set()
        for th in threads:
            th.join(30)
        assert len(calls) == 1
        ran = [o for outcomes in results.values() for o in outcomes]
        assert [(o.job, o.status) for o in ran] == [("retention", "ok")]
        row = job_row(ctx, "retention")
        assert (row["runs"], row["status"], row["owner"]) == (1, "ok", calls[0])
    finally:
        for e in engines:
            e.dispose()


def test_the_worker_tick_runs_the_real_jobs(ctx: Context, clock: Any) -> None:
    sctx = scheduled(ctx, jobs={"retention": HOURLY, "dead_letter_retry": HOURLY})
    assert worker_jobs(sctx) == []
    clock.now = at(2026, 3, 2, 10, 0)
    ran = {o.job: o for o in worker_jobs(sctx)}
    assert ran["retention"].status == "ok" and ran["dead_letter_retry"].status == "ok"
    assert (ran["retention"].result.outbox, ran["retention"].result.inbox) == (0, 0)


def test_the_jobs_cli_lists_and_runs(ctx: Context, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BACKORDER_DATABASE_URL", ctx.settings.database_url)
    monkeypatch.setenv("BACKORDER_SCHEDULE__TIMEZONE", "Europe/Berlin")
    runner = CliRunner()
    listed = runner.invoke(app, ["jobs", "list"])
    assert listed.exit_code == 0, listed.output
    assert "times in Europe/Berlin" in listed.output
    for name in scheduler.REGISTRY:
        assert name in listed.output
    ran = runner.invoke(app, ["jobs", "run", "retention"])
    assert ran.exit_code == 0, ran.output
    assert "job retention ran: Pruned(outbox=0, inbox=0)" in ran.output
    line = next(ln for ln in runner.invoke(app, ["jobs", "list"]).output.splitlines() if ln.startswith("retention"))
    assert line.split()[-2:] == ["ok", "1"]
    unknown = runner.invoke(app, ["jobs", "run", "nightly"])
    assert unknown.exit_code == 2 and "no job 'nightly'" in unknown.output
    monkeypatch.setenv("BACKORDER_SCHEDULE__JOBS__RETENTION__CRON", "99 * * * *")
    bad = runner.invoke(app, ["jobs", "list"])
    assert bad.exit_code == 2 and "schedule.jobs.retention.cron" in bad.output


def test_every_real_job_runs_on_an_empty_store(ctx: Context) -> None:
    outcomes = {name: scheduler.run_now(ctx, name, owner="test") for name in scheduler.REGISTRY}
    assert {n: (o.status, o.error) for n, o in outcomes.items()} == {n: ("ok", None) for n in scheduler.REGISTRY}
    listed = {row["job"]: row for row in scheduler.listing(ctx)}
    assert all(row["status"] == "ok" and row["runs"] == 1 and row["owner"] == "test" for row in listed.values())
    assert listed["digests"]["next_run"] == at(2026, 3, 2, 9, 1)
