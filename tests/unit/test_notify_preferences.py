from __future__ import annotations

from datetime import UTC, datetime, time

import pytest

from notifiers.preferences import Window, after_window, inside_window, next_local, resolve, zone
from notifiers.routing import Route, customer_plan, route

LONDON = zone("Europe/London")
NEW_YORK = zone("America/New_York")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_defaults_fill_what_the_customer_did_not_choose() -> None:
    p = resolve({}, default_channel="console", default_digest_at="18:00")
    assert (p.channels, p.delivery, p.routing, p.quiet_hours, p.max_per_order_per_day) == (
        ("console",), "instant", "first", None, None)
    assert p.digest_at == time(18, 0) and not p.stopped
    chosen = resolve({"channels": ["whatsapp", "email"], "delivery": "digest", "digest_at": "07:30",
                      "quiet_hours": {"start": "21:00", "end": "08:00"}, "routing": "all", "opt_out": ["sms"],
                      "max_per_order_per_day": 2}, default_channel="console", default_digest_at="18:00")
    assert chosen.channels == ("whatsapp", "email") and chosen.delivery == "digest"
    assert chosen.quiet_hours == Window(time(21), time(8)) and chosen.opt_out == {"sms"}
    assert resolve({"opt_out": ["all"]}, default_channel="console", default_digest_at="18:00").stopped


@pytest.mark.parametrize(("start", "end", "at", "inside"), [
    ("21:00", "08:00", "23:30", True),   # across midnight, evening side
    ("21:00", "08:00", "03:00", True),   # across midnight, morning side
    ("21:00", "08:00", "08:00", False),  # the end is open
    ("21:00", "08:00", "12:00", False),
    ("12:00", "14:00", "13:59", True),
    ("12:00", "14:00", "14:00", False),
    ("09:00", "09:00", "09:00", False),  # an empty window
])
def test_window_membership(start: str, end: str, at: str, inside: bool) -> None:
    h, m = map(int, at.split(":"))
    assert Window(time(*map(int, start.split(":"))), time(*map(int, end.split(":")))).contains(time(h, m)) is inside


def test_quiet_hours_across_midnight_wait_until_the_local_morning() -> None:
    quiet = Window(time(21), time(8))
    # 22:30 in New York (EST, UTC-5) on 10 Jan: waits until 08:00 local on 11 Jan = 13:00 UTC.
    assert after_window(utc(2026, 1, 11, 3, 30), NEW_YORK, quiet) == utc(2026, 1, 11, 13, 0)
    # 06:00 local the same morning: waits two hours.
    assert after_window(utc(2026, 1, 11, 11, 0), NEW_YORK, quiet) == utc(2026, 1, 11, 13, 0)
    # Outside the window: now.
    assert after_window(utc(2026, 1, 11, 15, 0), NEW_YORK, quiet) == utc(2026, 1, 11, 15, 0)


def test_quiet_hours_ending_on_a_dst_change_day_use_the_new_offset() -> None:
    quiet = Window(time(22), time(7))
    # London springs forward on 29 March 2026 at 01:00 UTC: 07:00 local that morning is BST = 06:00 UTC.
    assert after_window(utc(2026, 3, 28, 23, 0), LONDON, quiet) == utc(2026, 3, 29, 6, 0)
    # And falls back on 25 October 2026: 07:00 local is GMT = 07:00 UTC.
    assert after_window(utc(2026, 10, 24, 23, 0), LONDON, quiet) == utc(2026, 10, 25, 7, 0)
    # New York: 8 March 2026, 07:00 EDT = 11:00 UTC (the night began in EST).
    assert after_window(utc(2026, 3, 8, 4, 0), NEW_YORK, quiet) == utc(2026, 3, 8, 11, 0)


def test_a_window_end_inside_the_spring_gap_resolves_to_a_real_instant() -> None:
    # 01:30 does not exist in London on 29 March 2026; the message must still go out that night.
    out = after_window(utc(2026, 3, 29, 0, 15), LONDON, Window(time(0, 0), time(1, 30)))
    assert utc(2026, 3, 29, 0, 15) < out <= utc(2026, 3, 29, 1, 30)


def test_allowed_hours_open_at_the_next_start() -> None:
    hours = Window(time(9), time(17))
    assert inside_window(utc(2026, 1, 5, 18, 0), LONDON, hours) == utc(2026, 1, 6, 9, 0)
    assert inside_window(utc(2026, 1, 5, 7, 0), LONDON, hours) == utc(2026, 1, 5, 9, 0)
    assert inside_window(utc(2026, 1, 5, 10, 0), LONDON, hours) == utc(2026, 1, 5, 10, 0)
    assert inside_window(utc(2026, 7, 5, 7, 0), LONDON, hours) == utc(2026, 7, 5, 8, 0)  # BST


def test_next_local_digest_time_is_strictly_after() -> None:
    assert next_local(utc(2026, 1, 5, 17, 0), LONDON, time(18)) == utc(2026, 1, 5, 18, 0)
    assert next_local(utc(2026, 1, 5, 18, 0), LONDON, time(18)) == utc(2026, 1, 6, 18, 0)
    assert next_local(utc(2026, 10, 24, 18, 0), LONDON, time(18)) == utc(2026, 10, 25, 18, 0)  # GMT again


def test_first_routing_falls_back_in_the_chosen_order_and_says_why_channels_were_left_out() -> None:
    prefs = resolve({"channels": ["whatsapp", "sms", "email"], "opt_out": ["sms"]}, default_channel="console",
                    default_digest_at="18:00")
    plan = customer_plan(prefs, {"email": "a@example.com", "phone": "+447700900123"}, "C1",
                         configured={"whatsapp", "sms", "email", "console"})
    assert plan.send == (Route("whatsapp", "+447700900123"),)
    assert plan.fallback == (Route("email", "a@example.com"),)
    assert plan.unusable == (("sms", "opted_out"),)


def test_all_routing_sends_on_every_usable_channel() -> None:
    plan = route(["email", "sms", "whatsapp"], "all", {"email": "a@x.org", "sms": "+15550100", "whatsapp": None},
                 configured={"email", "sms"})
    assert [r.channel for r in plan.send] == ["email", "sms"] and plan.fallback == ()
    assert plan.unusable == (("whatsapp", "channel_not_configured"),)
