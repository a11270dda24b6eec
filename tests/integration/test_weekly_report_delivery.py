"""services.weekly_report.deliver_due (the scheduler's `weekly_report` job): last week's report is recorded
once, however often it is called, and its messages reach Slack (summary + the chart through files_upload_v2),
Teams (an Adaptive Card with the chart's signed URL) and e-mail (HTML with inline charts, the PDF and CSV
attached), each through its fake on 127.0.0.1. SQLite and PostgreSQL (the `ctx` fixture)."""

from __future__ import annotations

import asyncio
import base64
import csv
import io
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from rich.console import Console
from sqlalchemy import func, select

from backorder.config import load_settings
from services import weekly_report
from services.context import Context
from services.worker import drain_outbox
from store import tables as t
from tests.fakes.bot_connector import BotConnector
from tests.fakes.slack_api import FakeSlack
from tests.fakes.smtp_server import FakeSMTP
from tests.report_scenario import Scenario
from tests.slack_bot import SECRET, TOKEN
from tests.teams_bot import post

REPORTS = "C0REPORTS1"
OPS = "19:ops@thread.tacv2"
LEAD = "lead@example.com"
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def smtp() -> Iterator[FakeSMTP]:
    with FakeSMTP() as server:
        yield server


def report_ctx(ctx: Context, slack: FakeSlack, smtp: FakeSMTP, **report: Any) -> Context:
    settings = load_settings(
        database_url=ctx.settings.database_url,
        slack={"bot_token": TOKEN, "signing_secret": SECRET, "api_base_url": slack.api_url},
        teams={"anonymous": True},
        email={"host": smtp.host, "port": smtp.port, "starttls": False, "from_address": "bot@example.com"},
        links={"public_base_url": "https://bot.example.com", "secret": "link-secret"},
        notify={"rules": {"ops_digest": {"enabled": False}}},
        report={"slack_channel": REPORTS, "teams_conversation": OPS, "emails": [LEAD], "attach": ["pdf", "csv"],
                **report},
    )
    return Context(engine=ctx.engine, settings=settings, clock=ctx.clock)


def _reports(ctx: Context) -> list[Any]:
    with ctx.engine.connect() as conn:
        return conn.execute(select(t.reports)).all()


def _report_rows(ctx: Context) -> list[Any]:
    o = t.outbox
    with ctx.engine.connect() as conn:
        return conn.execute(select(o).where(o.c.kind == "weekly_report").order_by(o.c.channel)).all()


def test_the_report_goes_out_once_a_week_to_slack_teams_and_email(ctx: Context, slack: FakeSlack,
                                                                   bc: BotConnector, smtp: FakeSMTP) -> None:
    made = report_ctx(ctx, slack, smtp)
    scenario = Scenario(made)
    scenario.run()
    assert post(scenario.client, bc.members_added(conversation=OPS)).status_code == 202  # the app joined the team
    console = Console(file=io.StringIO())
    asyncio.run(drain_outbox(made, console))  # what the scenario itself queued, out of the way
    posted_before = len(slack.calls("chat.postMessage"))

    done = weekly_report.deliver_due(made)
    assert done is not None and done["week"] == "2026-W09" and done["messages"] == 3
    assert weekly_report.deliver_due(made) is None  # a second call (another worker, a catch-up run): nothing
    [report] = _reports(made)
    assert report.id == done["report_id"] and report.kind == "weekly" and report.figures["week"] == "2026-W09"
    assert report.delivered_at is not None
    rows = _report_rows(made)
    assert [(r.channel, r.recipient, r.status) for r in rows] == [
        ("email", LEAD, "pending"), ("slack", REPORTS, "pending"), ("teams", OPS, "pending")]

    assert asyncio.run(drain_outbox(made, console)) == 3

    # Slack: the summary as blocks, then the trend chart shared in the channel through the upload flow.
    [summary] = [c for c in slack.calls("chat.postMessage")[posted_before:] if c.args.get("channel") == REPORTS]
    assert summary.args["blocks"][0]["text"]["text"] == "Weekly backorder report 2026-W09"
    assert "Backorders opened: 3, resolved: 2" in summary.args["blocks"][1]["text"]["text"]
    [url_call] = slack.calls("files.getUploadURLExternal")
    assert url_call.args["filename"] == "trend-2026-W09.png" and int(url_call.args["length"]) > 1000
    assert len(slack.calls("upload")) == 1 and len(slack.calls("files.completeUploadExternal")) == 1
    [shared] = slack.uploaded()
    assert shared["channel"] == REPORTS and shared["data"].startswith(PNG) and len(shared["data"]) == int(
        url_call.args["length"])

    # Teams: the summary card, and the chart by a signed URL Teams can fetch without our token.
    [card_post] = [p for p in bc.posts if p.conversation_id == OPS and p.activity.get("attachments")]
    card = card_post.activity["attachments"][0]["content"]
    assert card["body"][0]["text"] == "Weekly backorder report 2026-W09"
    [image] = [b for b in card["body"] if b["type"] == "Image"]
    sig = weekly_report.chart_signature("link-secret", report.id, "trend")
    assert image["url"] == f"https://bot.example.com/reports/{report.id}/chart.png?chart=trend&sig={sig}"

    # E-mail: text and HTML alternatives, the three charts inline (cid:), the PDF and the CSV attached.
    [mail] = smtp.wait_for(1)
    msg = mail.message
    assert mail.rcpt_tos == (LEAD,) and msg["Subject"] == "Weekly backorder report 2026-W09"
    assert "backorder-report-2026-W09.pdf" in msg.get_body(("plain",)).get_content()
    html_part = msg.get_body(("html",))
    html = html_part.get_content()
    assert all(f'src="cid:{name}"' in html for name in ("trend", "aging", "top_skus"))
    related = {p["Content-ID"]: p.get_payload(decode=True) for p in msg.walk() if p["Content-ID"]}
    assert set(related) == {"<trend>", "<aging>", "<top_skus>"} and all(v.startswith(PNG) for v in related.values())
    files = {a.get_filename(): a.get_payload(decode=True) for a in msg.iter_attachments()}
    assert set(files) == {"backorder-report-2026-W09.pdf", "backorder-report-2026-W09.csv"}
    assert files["backorder-report-2026-W09.pdf"].startswith(b"%PDF")
    assert next(csv.reader(io.StringIO(files["backorder-report-2026-W09.csv"].decode()))) == ["section", "summary"]

    # A week later the next report goes out, once again.
    made.clock.now += timedelta(days=7)  # type: ignore[attr-defined]
    later = weekly_report.deliver_due(made)
    assert later is not None and later["week"] == "2026-W10" and weekly_report.deliver_due(made) is None
    assert len(_reports(made)) == 2


def test_roles_unconfigured_channels_and_disabled(ctx: Context, slack: FakeSlack, smtp: FakeSMTP) -> None:
    # The team's contact (its Slack channel, by its `first` routing), an explicit Teams conversation on a bot
    # without Teams: its row is recorded dead, saying why; the same Slack channel twice is one message.
    made = report_ctx(ctx, slack, smtp, roles=["team"], slack_channel="C0TEAM1", emails=[])
    settings = made.settings.model_copy(update={"teams": load_settings().teams})
    settings.staff.team.channels = ["slack", "console"]
    settings.staff.team.slack_channel = "C0TEAM1"
    made = Context(engine=ctx.engine, settings=settings, clock=ctx.clock)
    done = weekly_report.deliver_due(made)
    assert done is not None and done["messages"] == 1
    rows = _report_rows(made)
    assert [(r.channel, r.recipient, r.status, r.error_reason) for r in rows] == [
        ("slack", "C0TEAM1", "pending", None), ("teams", OPS, "dead", "channel_not_configured")]
    assert rows[0].role == "team"
    payload_png = base64.b64decode(rows[0].payload["files"][0]["content_b64"])
    assert payload_png.startswith(PNG)

    off = Context(engine=ctx.engine, settings=made.settings.model_copy(
        update={"report": made.settings.report.model_copy(update={"enabled": False})}), clock=ctx.clock)
    off.clock.now += timedelta(days=7)  # type: ignore[attr-defined]
    assert weekly_report.deliver_due(off) is None
    with ctx.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(t.reports)).scalar_one() == 1


def test_bad_report_settings_name_the_key() -> None:
    for bad, named in (({"timezone": "Mars/Base"}, "report.timezone"), ({"attach": ["docx"]}, "report.attach"),
                       ({"roles": ["nobody"]}, "report.roles"), ({"weeks": 0}, "report.weeks")):
        with pytest.raises(ValueError, match=named.replace(".", r"\.")):
            load_settings(report=bad)
