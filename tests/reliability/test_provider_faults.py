"""Provider faults: every outbound channel's fake fails 30% of requests at random (seeded) with a 500, a 429 with
Retry-After, an answer slower than the sender's timeout or a reset connection, while one dispatcher sends a few
hundred messages a channel. Every message must end sent or dead-lettered with the reason its last failure stands
for; each attempt the outbox counts reaches the provider at most once (never before its rate-limit slot), and one
that did not timed out; a provider carries a message out more than once only after a timeout left the outcome
unknown to us; no retry comes before a 429's Retry-After; and no channel's or destination's rate limit is exceeded,
as the fakes count: the most requests any one second saw at a fake is within the limit (AT_FAKE_EXTRA aside).

Wall clock throughout (the fakes time arrivals with it): [notify] backoff of 0.2 s doubling to at most 2 s, three
attempts and one-second provider timeouts keep the run to seconds. What the dispatcher decided for each attempt
(the slot it reserved, the result it wrote, a send handed back for a fresh slot) is read by wrapping its claim and
record steps, unchanged. On a busy machine an answer can come too late for the sender whatever the fake drew, so
an attempt may always end in "timeout"; and a send's turn can come well after its slot (a slow provider's
timeout holding the batch up), which the dispatcher must not answer with a late bunch: the reserved slots are
checked exactly, no request may reach a provider before its slot, and each fake's own per-second count, channel
and destination, is held to the limit.

E-mail is left out: SMTP has no 429 and no Retry-After, and its 4xx/5xx/timeout/drop classification is covered
in tests/integration/test_senders.py.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from microsoft_agents.activity import Activity
from sqlalchemy import insert, select

from backorder.config import Settings, load_settings
from bot.teams.agent import reference_json
from notifiers import dispatch
from notifiers.senders import slack as slack_sender
from notifiers.senders import teams as teams_sender
from notifiers.senders.registry import channel_rates
from services.context import Context, utcnow
from services.worker import make_dispatcher
from store import chat_state, outbox
from store import tables as t
from store.db import unit_of_work
from tests.fakes.bot_connector import BotConnector
from tests.fakes.faults import FAULT_MODES, max_in_window
from tests.fakes.slack_api import FakeSlack
from tests.fakes.twilio_api import FakeTwilio
from tests.fakes.webhook_receiver import WebhookReceiver

SEED = 20260302
FAULT_RATE = 0.3
TIMEOUT_S = 1.0  # every sender's provider timeout in this test
SLOW_S = 1.5  # a "slow" answer comes this late: past the timeout
RETRY_AFTER_S = 1.0
MAX_ATTEMPTS = 3
ROWS = 150  # per channel
RECIPIENTS = 50  # per chat channel: three messages each, so the per-destination limits bite
CHANNEL_RATE = 10.0  # messages/s over each whole channel
EARLY_S = 0.02  # wall clock against monotonic clock, and loopback: no request may reach a fake earlier than this
RUN_LIMIT_S = 120.0
# What a fake may count in a second beyond the limit. The dispatcher paces the moment each request leaves (1/rate
# apart within a process), so it sends no more than `rate` in any second; the fake stamps a request when its
# handler runs, a little later by a varying amount (loopback, thread scheduling), which can pull one request
# across a window's edge: one more, never two while that delay varies by less than 1/rate (0.1 s here).
AT_FAKE_EXTRA = 1

ACCOUNT, TWILIO_TOKEN = "AC" + "f0" * 16, "twilio-token-faults"
SLACK_TOKEN = "xoxb-faults"
CHANNELS = ("webhook", "sms", "whatsapp", "slack", "teams")

# The error_reason each sender gives each fault (the senders' module docs): what a dead letter must carry.
REASONS: dict[str, dict[str, str]] = {
    "webhook": {"500": "http_5xx", "429": "rate_limited", "slow": "timeout", "reset": "connection"},
    "sms": {"500": "server_error", "429": "rate_limited", "slow": "timeout", "reset": "connection"},
    "whatsapp": {"500": "server_error", "429": "rate_limited", "slow": "timeout", "reset": "connection"},
    "slack": {"500": "server_error", "429": "rate_limited", "slow": "timeout", "reset": "connection"},
    "teams": {"500": "http_500", "429": "rate_limited", "slow": "timeout", "reset": "connection"},
}


@dataclass
class Decisions:
    """What the dispatcher did per outbox row: the slot of each send (None: no limit), each result written."""

    slots: dict[str, list[datetime | None]] = field(default_factory=lambda: defaultdict(list))
    results: dict[int, list[outbox.Result]] = field(default_factory=lambda: defaultdict(list))
    missed: int = 0  # sends handed back to reserve a fresh slot, their turn having come too late after theirs


@dataclass(frozen=True, slots=True)
class Attempt:
    """One request as a fake saw it: which message, to whom, when (monotonic), and the fault it drew."""

    key: str
    recipient: str
    at: float
    outcome: str


@dataclass
class Fakes:
    rx: WebhookReceiver
    twilio: FakeTwilio
    slack: FakeSlack
    bc: BotConnector

    def attempts(self) -> dict[str, list[Attempt]]:
        """Per channel, every request that carried one of the test's messages, in arrival order."""
        out: dict[str, list[Attempt]] = {
            "webhook": [Attempt(r.key or "", self.rx.url, r.monotonic, r.outcome) for r in self.rx.requests],
            "sms": [], "whatsapp": [],
            "slack": [Attempt(c.args.get("text", ""), c.args.get("channel", ""), c.monotonic, c.outcome)
                      for c in self.slack.calls("chat.postMessage")],
            "teams": [Attempt(p.activity.get("text", ""), p.conversation_id or "", p.monotonic, p.outcome)
                      for p in self.bc.posts if p.method == "POST"],
        }
        for r in self.twilio.requests:
            if r.path.endswith("/Messages.json"):
                to = r.form.get("To", "")
                out["whatsapp" if to.startswith("whatsapp:") else "sms"].append(
                    Attempt(r.form.get("Body", ""), to.removeprefix("whatsapp:"), r.monotonic, r.outcome))
        return {ch: sorted(a, key=lambda x: x.at) for ch, a in out.items()}


@pytest.fixture
def fakes() -> Iterator[Fakes]:
    with WebhookReceiver(slow_seconds=SLOW_S, retry_after=str(int(RETRY_AFTER_S))) as rx, \
            FakeTwilio(ACCOUNT, TWILIO_TOKEN, retry_after=str(int(RETRY_AFTER_S))) as tw, \
            FakeSlack(token=SLACK_TOKEN) as slack, BotConnector() as bc:
        modes = list(FAULT_MODES)
        rx.fail_rate(FAULT_RATE, modes, seed=SEED)
        tw.fail_rate(FAULT_RATE, modes, seed=SEED + 1, slow_seconds=SLOW_S)
        slack.fail_rate(FAULT_RATE, modes, seed=SEED + 2, slow_seconds=SLOW_S, retry_after=str(int(RETRY_AFTER_S)))
        bc.fail_rate(FAULT_RATE, modes, seed=SEED + 3, slow_seconds=SLOW_S, retry_after=str(int(RETRY_AFTER_S)))
        yield Fakes(rx, tw, slack, bc)


def faulty_settings(ctx: Context, f: Fakes) -> Settings:
    return load_settings(
        database_url=ctx.settings.database_url,
        webhook={"url": f.rx.url, "allow_http": True, "allow_private": True, "timeout_seconds": TIMEOUT_S},
        twilio={"account_sid": ACCOUNT, "auth_token": TWILIO_TOKEN, "api_base_url": f.twilio.url,
                "public_base_url": "https://bot.example.com", "sms_from": "+15005550006",
                "whatsapp_from": "+14155238886", "sms_mps": CHANNEL_RATE, "whatsapp_mps": CHANNEL_RATE},
        slack={"bot_token": SLACK_TOKEN, "signing_secret": "slack-signing-faults", "api_base_url": f.slack.api_url},
        teams={"anonymous": True},
        notify={"rules": {"ops_digest": {"enabled": False}}, "max_attempts": MAX_ATTEMPTS, "backoff_seconds": 0.2,
                "backoff_max_seconds": 2.0,
                "rate_per_channel": {"webhook": CHANNEL_RATE, "slack": CHANNEL_RATE, "teams": CHANNEL_RATE}},
    )


def recipients(channel: str, f: Fakes) -> list[str]:
    if channel == "webhook":
        return [f.rx.url]  # one endpoint: only the channel's limit applies
    if channel in ("sms", "whatsapp"):
        return [f"+44791{1 if channel == 'sms' else 2}{i:05d}" for i in range(RECIPIENTS)]
    if channel == "slack":
        return [f"CFAULT{i:03d}" for i in range(RECIPIENTS)]
    return [f"19:fault{i:03d}@thread.tacv2" for i in range(RECIPIENTS)]


def seed_outbox(ctx: Context, f: Fakes, now: datetime) -> None:
    rows: list[dict[str, Any]] = []
    for channel in CHANNELS:
        to = recipients(channel, f)
        for i in range(ROWS):
            # The body is the key too: the chat providers get no idempotency header, but they see the text.
            key = f"fault-{channel}-{i:04d}"
            rows.append({"idempotency_key": key, "kind": "decision" if channel == "webhook" else "chat_reply",
                         "channel": channel, "recipient": to[i % len(to)], "audience": "system", "line_ids": [],
                         "locale": "en", "body": key, "payload": {"n": i} if channel == "webhook" else {},
                         "facts": {}, "fallback": [], "urgent": False, "status": "pending", "due_at": now,
                         "attempts": 0, "created_at": now, "occurred_at": now,
                         "expires_at": now + timedelta(hours=1)})
    with unit_of_work(ctx.engine) as conn:
        conn.execute(insert(t.outbox), rows)
        # Teams posts where the bot was first talked to: a conversation reference per channel conversation.
        for conversation in recipients("teams", f):
            activity = Activity.model_validate(f.bc.message("hi", conversation=conversation,
                                                            conversation_type="channel"))
            chat_state.save_ref(conn, "teams", conversation, reference_json(activity), now)


async def dispatch_until_settled(ctx: Context, seen: Decisions) -> float:
    """Drain the outbox again whenever a retry comes due, until every row is sent or dead; returns seconds."""
    d = make_dispatcher(ctx, owner="faults")
    for channel in ("sms", "whatsapp"):  # the Twilio client's timeout is fixed when it is made (10 s)
        d.senders[channel].http.timeout = TIMEOUT_S  # type: ignore[attr-defined]
    claim, record = d.claim, d._record

    keys: dict[int, str] = {}

    def claim_and_note() -> list[dispatch.Claimed]:
        claimed = claim()
        for c in claimed:
            keys[c.row.id] = c.row.idempotency_key
            if c.hold is None:  # sent now, at its slot (a row handed back is noted when it is claimed again)
                seen.slots[c.row.idempotency_key].append(c.slot)
        return claimed

    def record_and_note(results: Sequence[outbox.Result], fall_from: Sequence[Any]) -> None:
        for r in results:
            if r.attempts_back == 0:  # not a hand-back
                seen.results[r.id].append(r)
            elif r.error == dispatch.SLOT_MISSED:  # its turn came too late after its slot: not sent, slot unused
                seen.slots[keys[r.id]].pop()
                seen.missed += 1
        record(results, fall_from)

    d.claim, d._record = claim_and_note, record_and_note  # type: ignore[method-assign]
    started = time.monotonic()
    try:
        while True:
            await d.drain()
            with ctx.engine.connect() as conn:
                due = conn.execute(select(t.outbox.c.due_at).where(
                    t.outbox.c.status.not_in(("sent", "delivered", "dead")))).scalars().all()
            if not due:
                return time.monotonic() - started
            assert time.monotonic() - started < RUN_LIMIT_S, f"{len(due)} message(s) still unsettled"
            wait = (min(due) - utcnow()).total_seconds()
            await asyncio.sleep(min(max(wait, 0.01), 1.0))
    finally:
        await d.aclose()


def consistent(channel: str, outcome: str, result: outbox.Result) -> bool:
    """Whether what the dispatcher wrote for an attempt fits what the fake answered it."""
    if result.error_reason == "timeout":
        return True  # any answer can come too late for the sender on a busy machine
    if outcome == "ok":
        return result.status in ("sent", "delivered")
    return result.status in ("failed", "dead") and result.error_reason == REASONS[channel].get(outcome)


@dataclass
class Tally:
    sent: int = 0
    dead: Counter[str] = field(default_factory=Counter)
    retries: int = 0
    duplicates: int = 0  # extra times a sent message was carried out, each after a timeout of ours
    carried_out_dead: int = 0  # dead messages a timed-out attempt of which had been carried out there
    late_answers: int = 0  # an "ok" the sender gave up waiting for (not a drawn "slow"): the machine was busy
    unsent_timeouts: int = 0  # an attempt that timed out before its request was out: the machine was busy
    lateness: list[float] = field(default_factory=list)  # seconds from each request's slot to the provider


def check_row(channel: str, row: Any, tries: list[Attempt], slots: list[float], results: list[outbox.Result],
              tally: Tally, problems: list[str]) -> None:
    """One message's attempts as the dispatcher made them (`slots`: monotonic send times, `results`) against the
    requests the provider saw (`tries`): each request belongs to the last attempt whose slot it did not precede."""
    key = row.idempotency_key
    outcomes = [a.outcome for a in tries]
    if not len(results) == len(slots) == row.attempts:
        problems.append(f"{key}: {row.attempts} attempt(s) counted, {len(slots)} claimed to send, "
                        f"{len(results)} result(s) written")
        return
    reached: dict[int, Attempt] = {}
    for a in tries:
        i = max((j for j, slot in enumerate(slots) if slot - EARLY_S <= a.at), default=None)
        if i is None or i in reached:
            problems.append(f"{key}: a request at the provider before its slot, or twice for one attempt {outcomes}")
            return
        reached[i] = a
        tally.lateness.append(a.at - slots[i])
    tally.retries += max(len(results) - 1, 0)
    for i, result in enumerate(results):
        a = reached.get(i)
        final = i == len(results) - 1
        if not final and result.status in ("sent", "delivered"):
            problems.append(f"{key}: attempt {i + 1} was {result.status} and the message was sent again")
        if a is None:  # timed out before the request was out (a busy machine): the only way not to get there
            tally.unsent_timeouts += 1
            if result.error_reason != "timeout":
                problems.append(f"{key}: attempt {i + 1} never reached the provider, written {result.status} "
                                f"{result.error_reason!r}")
            continue
        if not consistent(channel, a.outcome, result):
            problems.append(f"{key}: attempt {i + 1} answered {a.outcome}, written {result.status} "
                            f"{result.error_reason!r}")
        if a.outcome == "ok" and result.error_reason == "timeout":
            tally.late_answers += 1
        later = reached.get(i + 1)
        if a.outcome == "429" and later is not None and later.at - a.at < RETRY_AFTER_S - 0.01:
            # The dispatcher counts Retry-After from the answer, after the request arrived: 10 ms for the clocks.
            problems.append(f"{key}: retried {later.at - a.at:.3f} s after a 429 with Retry-After {RETRY_AFTER_S:g}")
    # Carried out there but retried here: consistent() let that pass only for a timeout (the outcome unknown).
    carried_out = sum(1 for a in reached.values() if a.outcome in ("ok", "slow"))
    if row.status == "dead":
        tally.carried_out_dead += 1 if carried_out else 0
    else:
        tally.duplicates += max(carried_out - 1, 0)
    last = results[-1]
    if row.status in ("sent", "delivered"):
        tally.sent += 1
        if last.status != row.status or reached.get(len(results) - 1) is None:
            problems.append(f"{key}: {row.status}, but the last attempt was written {last.status} {outcomes}")
    elif row.status == "dead":
        tally.dead[str(row.error_reason)] += 1
        if len(results) != MAX_ATTEMPTS or last.status != "dead" or last.error_reason != row.error_reason:
            problems.append(f"{key}: dead as {row.error_reason!r} after {len(results)} attempt(s) {outcomes}, "
                            f"last written {last.status} {last.error_reason!r}")
    else:
        problems.append(f"{key}: left {row.status}")


def test_every_message_ends_sent_or_dead_with_its_reason_within_the_limits(
        ctx: Context, fakes: Fakes, monkeypatch: pytest.MonkeyPatch) -> None:
    # The chat senders' timeouts are module constants (10 s); a shorter one keeps "slow" from taking minutes.
    monkeypatch.setattr(slack_sender, "TIMEOUT_S", TIMEOUT_S)
    monkeypatch.setattr(teams_sender, "TIMEOUT_S", TIMEOUT_S)
    ctx = Context(engine=ctx.engine, settings=faulty_settings(ctx, fakes), clock=utcnow)
    seed_outbox(ctx, fakes, utcnow())
    limits = channel_rates(ctx.settings)
    per_destination = ctx.settings.notify.rate_per_destination
    decisions = Decisions()
    wall_minus_monotonic = time.time() - time.monotonic()

    elapsed = asyncio.run(dispatch_until_settled(ctx, decisions))

    with ctx.engine.connect() as conn:
        rows = {r.idempotency_key: r for r in conn.execute(select(t.outbox)).all()}
    seen = fakes.attempts()
    problems: list[str] = []
    print(f"\n{len(rows)} messages settled in {elapsed:.1f} s ({FAULT_RATE:.0%} of requests faulty: "
          f"{', '.join(FAULT_MODES)}; {MAX_ATTEMPTS} attempts, timeouts {TIMEOUT_S:g} s)")
    dead_total = 0
    for channel in CHANNELS:
        by_key: dict[str, list[Attempt]] = defaultdict(list)
        for a in seen[channel]:
            by_key[a.key].append(a)
        mine = {k: r for k, r in rows.items() if r.channel == channel}
        assert set(by_key) <= set(mine), f"{channel}: requests for messages never queued"
        tally = Tally()
        slot_times: list[float] = []
        slot_times_by_dest: dict[str, list[float]] = defaultdict(list)
        for key, row in mine.items():
            slots = [s.astimezone(UTC).timestamp() - wall_minus_monotonic for s in decisions.slots.get(key, [])
                     if s is not None]
            if len(slots) != len(decisions.slots.get(key, [])):
                problems.append(f"{key}: sent without a slot under a rate limit")
            check_row(channel, row, by_key.get(key, []), slots, decisions.results.get(row.id, []), tally, problems)
            slot_times += slots
            slot_times_by_dest[row.recipient] += slots
        # Slots of one limit are 1/rate apart: the window is a hair short of a second for 1/7 s steps rounded
        # to microseconds.
        planned = max_in_window(slot_times, 1.0 - 1e-3)
        planned_dest = max((max_in_window(v, 1.0 - 1e-3) for v in slot_times_by_dest.values()), default=0)
        observed = max_in_window(a.at for a in seen[channel])
        observed_dest = max((max_in_window(a.at for a in seen[channel] if a.recipient == d) for d in
                             slot_times_by_dest), default=0)
        limit, dest_limit = limits[channel], per_destination.get(channel)
        if planned > limit:
            problems.append(f"{channel}: {planned} sends planned within a second, limit {limit:g}/s")
        if dest_limit is not None and planned_dest > dest_limit:
            problems.append(f"{channel}: {planned_dest} sends to one destination planned within a second, "
                            f"limit {dest_limit:g}/s")
        if observed > limit + AT_FAKE_EXTRA:
            problems.append(f"{channel}: the fake saw {observed} requests within a second, limit {limit:g}/s")
        if dest_limit is not None and observed_dest > dest_limit + AT_FAKE_EXTRA:
            problems.append(f"{channel}: the fake saw {observed_dest} requests to one destination within a second, "
                            f"limit {dest_limit:g}/s")
        faults = Counter(a.outcome for a in seen[channel])
        late = sorted(tally.lateness) or [0.0]
        problems += [f"{channel}: the fake never answered {mode}" for mode in FAULT_MODES if not faults[mode]]
        dead_total += sum(tally.dead.values())
        print(f"  {channel:8s} sent {tally.sent} dead {sum(tally.dead.values())} {dict(tally.dead)}; "
              f"{len(seen[channel])} requests ({tally.retries} retries; drawn {dict(sorted(faults.items()))}); "
              f"carried out twice after a timeout {tally.duplicates}, carried out but dead {tally.carried_out_dead}, "
              f"late answers {tally.late_answers}, timed out unsent {tally.unsent_timeouts}; per second: planned "
              f"{planned} (to one destination {planned_dest}), at the fake {observed} ({observed_dest}), "
              f"limit {limit:g} ({dest_limit or '-'}); requests after their slot by {late[len(late) // 2]:.3f} s "
              f"(median), {late[len(late) * 99 // 100]:.3f} s (99th percentile)")
    print(f"  {decisions.missed} send(s) reached their turn over {dispatch.LATE_S:g} s after their slot and took a "
          f"fresh one")
    assert not problems, f"{len(problems)} problem(s):\n" + "\n".join(problems[:40])
    assert dead_total > 0, "no message was dead-lettered: the faults never exhausted the attempts"
