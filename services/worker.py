"""The worker: dispatch plus the scheduled jobs, as its own process or a thread of `serve`."""

from __future__ import annotations

import asyncio
import logging
import threading
from datetime import timedelta

from rich.console import Console

from notifiers.dispatch import Dispatcher
from notifiers.senders.registry import build_senders, channel_rates
from services import digests, drafts, scheduler
from services.applier import Applier
from services.context import Context
from services.heartbeats import Heartbeat
from store.chat_state import purge_deliveries
from store.db import unit_of_work

log = logging.getLogger(__name__)

INBOX_POLL_S = 0.2  # a worker's applier is never kicked by the API process: it looks this often
DELIVERIES_KEPT = timedelta(days=7)  # past any provider's retries and WhatsApp's 24-hour window


def jobs(ctx: Context, owner: str | None = None) -> list[scheduler.Outcome]:
    """What a worker does now and then besides sending: the scheduler's tick (the `[schedule]` jobs that are
    due, each once cluster-wide: digests, drafts, the nightly allocation, ...) and forgetting old inbound
    deliveries."""
    ran = scheduler.run_due(ctx, owner=owner)
    with unit_of_work(ctx.engine) as conn:
        purge_deliveries(conn, ctx.now() - DELIVERIES_KEPT)
    return ran


def notify_jobs(ctx: Context) -> None:
    """What must be done before sending everything due now (`worker --once`, the demo): digests and drafts
    past their approval time or expiry, whatever their schedule."""
    digests.run_due(ctx)
    drafts.expire_due(ctx)
    drafts.escalate_due(ctx)
    with unit_of_work(ctx.engine) as conn:
        purge_deliveries(conn, ctx.now() - DELIVERIES_KEPT)


def make_dispatcher(ctx: Context, console: Console | None = None, owner: str | None = None) -> Dispatcher:
    # No jobs for the dispatcher: they run in a thread of their own (scheduler.Ticker), so a long one (the
    # nightly batch allocation) does not hold up sending.
    senders = build_senders(ctx.settings, console=console, engine=ctx.engine, clock=ctx.now)
    return Dispatcher(ctx.engine, ctx.settings.notify, senders, owner=owner, clock=ctx.now,
                      channel_rates=channel_rates(ctx.settings))


async def run_worker(ctx: Context, stop: asyncio.Event, console: Console | None = None,
                     wake: asyncio.Event | None = None, apply_inbox: bool = False, role: str = "worker",
                     ) -> Dispatcher:
    """Dispatch until `stop`; with `apply_inbox`, also apply stored events in a thread of this process.

    Applying is CPU-bound Python: a second process applying (SKIP LOCKED on PostgreSQL keeps them
    apart) is what adds a core to a burst stored with POST /events?wait=false.
    """
    dispatcher = make_dispatcher(ctx, console)
    wake = wake or asyncio.Event()
    composer = DraftComposer(ctx) if ctx.settings.llm.enabled else None
    if composer is not None:
        composer.start()
    applier = None
    if apply_inbox:
        loop = asyncio.get_running_loop()
        applier = Applier(ctx, idle_poll_s=INBOX_POLL_S, on_applied=lambda: loop.call_soon_threadsafe(wake.set))
        applier.start()
    heartbeat = Heartbeat(ctx.engine, role, ctx.settings.health.heartbeat_seconds, ctx.now)  # for /readyz
    await asyncio.to_thread(heartbeat.start)
    ticker = scheduler.Ticker(lambda: jobs(ctx), ctx.settings.notify.jobs_every_seconds)
    ticker.start()
    try:
        await dispatcher.run(stop, wake)
    finally:
        await asyncio.to_thread(ticker.stop)
        await asyncio.to_thread(heartbeat.stop)
        if composer is not None:
            await asyncio.to_thread(composer.stop)
        if applier is not None:
            await asyncio.to_thread(applier.stop)
        await dispatcher.aclose()
    return dispatcher


async def drain_outbox(ctx: Context, console: Console | None = None, max_rounds: int = 1000) -> int:
    """Send everything due now and return (for the demo, the CLI and tests): no polling, no waiting."""
    dispatcher = make_dispatcher(ctx, console)
    sent = 0
    try:
        notify_jobs(ctx)
        while drafts.compose_due(ctx):  # with a model: its drafts and their approval cards, before sending
            pass
        await dispatcher.drain(max_rounds)
        sent = dispatcher.sent
    finally:
        await dispatcher.aclose()
    return sent


class DraftComposer:
    """Asks the model for the drafts waiting for it, in a thread of its own: a slow or failing model (seconds
    per draft, two attempts) must not hold up sending, which the dispatcher's jobs tick would."""

    IDLE_S = 1.0

    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="draft-composer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                done = drafts.compose_due(self._ctx)
            except Exception:  # the store restarting: the drafts stay `drafting` and are claimed again
                log.exception("composing drafts failed")
                done = 0
            if not done:
                self._stop.wait(self.IDLE_S)


class WorkerThread:
    """A worker inside the `serve` process, so the embedded default runs as one command."""

    def __init__(self, ctx: Context, console: Console | None = None) -> None:
        self._ctx = ctx
        self._console = console
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._wake: asyncio.Event | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="notify-worker", daemon=True)

    def start(self) -> None:
        self._thread.start()
        self._ready.wait(10)

    def kick(self) -> None:
        """Look at the outbox now (new rows were just committed) instead of at the next poll."""
        if self._loop is not None and self._wake is not None:
            self._loop.call_soon_threadsafe(self._wake.set)

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=30)

    def _run(self) -> None:
        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop, self._wake = asyncio.Event(), asyncio.Event()
            self._ready.set()
            await run_worker(self._ctx, self._stop, self._console, self._wake, role="serve")

        try:
            asyncio.run(main())
        except Exception:
            log.exception("notification worker stopped")
