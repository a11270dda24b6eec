"""Slots of cron expressions (DST included) and the `[schedule]` / `[retention]` configuration."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from backorder.config import DEFAULT_JOBS, load_settings
from services.scheduler import REGISTRY, latest_slot, next_slot

pytestmark = pytest.mark.usefixtures("bare_config")  # tests/unit/conftest.py
BERLIN = ZoneInfo("Europe/Berlin")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_every_configured_job_has_a_function_and_the_defaults_are_the_agreed_ones() -> None:
    assert list(REGISTRY) == list(DEFAULT_JOBS)
    jobs = load_settings().schedule.jobs
    assert {n: (j.cron, j.enabled) for n, j in jobs.items()} == {
        "allocate_nightly": ("0 2 * * *", True), "overdue_check": ("0 * * * *", True),
        "digests": ("* * * * *", True), "drafts": ("* * * * *", True), "weekly_report": ("0 7 * * 1", True),
        "dead_letter_retry": ("*/15 * * * *", True), "retention": ("30 3 * * *", True),
        "task_escalation": ("*/5 * * * *", True), "reorder_check": ("15 * * * *", True)}
    s = load_settings()
    assert (s.schedule.timezone, s.retention.outbox_days, s.retention.inbox_days) == ("UTC", 30, 90)


def test_a_slot_at_now_is_now_and_one_a_moment_later_is_the_previous_one() -> None:
    assert latest_slot("0 9 * * *", utc(2026, 3, 2, 9, 0), ZoneInfo("UTC")) == utc(2026, 3, 2, 9, 0)
    assert latest_slot("0 9 * * *", utc(2026, 3, 2, 8, 59, 59), ZoneInfo("UTC")) == utc(2026, 3, 1, 9, 0)
    assert latest_slot("*/15 * * * *", utc(2026, 3, 2, 9, 44, 59), ZoneInfo("UTC")) == utc(2026, 3, 2, 9, 30)
    assert next_slot("0 7 * * 1", utc(2026, 3, 2, 7, 0), ZoneInfo("UTC")) == utc(2026, 3, 9, 7, 0)  # a Monday


def test_a_local_time_skipped_in_spring_runs_at_the_first_minute_that_exists() -> None:
    # 2026-03-29: Berlin jumps from 02:00 CET to 03:00 CEST; 02:30 does not exist that day.
    assert latest_slot("30 2 * * *", utc(2026, 3, 29, 0, 59), BERLIN) == utc(2026, 3, 28, 1, 30)  # 02:30 CET
    assert next_slot("30 2 * * *", utc(2026, 3, 29, 0, 59), BERLIN) == utc(2026, 3, 29, 1, 0)  # 03:00 CEST
    assert latest_slot("30 2 * * *", utc(2026, 3, 29, 1, 10), BERLIN) == utc(2026, 3, 29, 1, 0)
    assert next_slot("30 2 * * *", utc(2026, 3, 29, 1, 0), BERLIN) == utc(2026, 3, 30, 0, 30)  # 02:30 CEST


def test_a_local_time_repeated_in_autumn_is_one_slot_and_hourly_jobs_keep_every_real_hour() -> None:
    # 2026-10-25: Berlin goes back from 03:00 CEST to 02:00 CET; 02:30 happens at 00:30 and at 01:30 UTC.
    assert latest_slot("30 2 * * *", utc(2026, 10, 25, 0, 30), BERLIN) == utc(2026, 10, 25, 0, 30)
    assert latest_slot("30 2 * * *", utc(2026, 10, 25, 1, 45), BERLIN) == utc(2026, 10, 25, 0, 30)
    assert next_slot("30 2 * * *", utc(2026, 10, 25, 0, 31), BERLIN) == utc(2026, 10, 26, 1, 30)
    assert [latest_slot("0 * * * *", utc(2026, 10, 25, h, 5), BERLIN) for h in (0, 1, 2)] == [
        utc(2026, 10, 25, 0, 0), utc(2026, 10, 25, 1, 0), utc(2026, 10, 25, 2, 0)]


def test_a_table_naming_one_job_keeps_the_others_and_the_default_cron(tmp_path: Path) -> None:
    (tmp_path / "backorder.toml").write_text(
        '[schedule]\ntimezone = "Europe/Berlin"\n[schedule.jobs.digests]\nenabled = false\n'
        '[schedule.jobs.retention]\ncron = "0  4 * * *"\n[retention]\noutbox_days = 7\n')
    s = load_settings()
    assert s.schedule.timezone == "Europe/Berlin"
    assert (s.schedule.jobs["digests"].cron, s.schedule.jobs["digests"].enabled) == ("* * * * *", False)
    assert s.schedule.jobs["retention"].cron == "0 4 * * *"
    assert s.schedule.jobs["allocate_nightly"].cron == "0 2 * * *" and len(s.schedule.jobs) == len(DEFAULT_JOBS)
    assert s.retention.outbox_days == 7


@pytest.mark.parametrize(
    ("schedule", "named", "why"),
    [
        ({"jobs": {"nightly_allocation": {"cron": "0 2 * * *"}}}, "schedule.jobs", "unknown job 'nightly_allocation'"),
        ({"jobs": {"retention": {"cron": "61 * * * *"}}}, "schedule.jobs.retention.cron", "Bad minute"),
        ({"jobs": {"digests": {"cron": "* * *"}}}, "schedule.jobs.digests.cron", "five fields"),
        ({"jobs": {"digests": {"cron": "0 * * * * *"}}}, "schedule.jobs.digests.cron", "five fields"),
        ({"jobs": {"digests": {"cron": "0 25 * * *"}}}, "schedule.jobs.digests.cron", "Bad hour"),
        ({"timezone": "Europe/Atlantis"}, "schedule.timezone", "unknown time zone 'Europe/Atlantis'"),
    ],
)
def test_bad_schedules_name_the_key_and_the_reason(schedule: dict[str, object], named: str, why: str) -> None:
    with pytest.raises(ValueError) as err:
        load_settings(schedule=schedule)
    assert re.search(rf"^{re.escape(named)}$", str(err.value), re.M), str(err.value)
    assert why in str(err.value)


def test_retention_days_must_be_positive(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BACKORDER_RETENTION__INBOX_DAYS", "0")
    with pytest.raises(ValueError, match=re.escape("retention.inbox_days")):
        load_settings()
