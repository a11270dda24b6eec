"""An aiohttp application served on 127.0.0.1 from a thread and event loop of its own.

The fakes of vendor APIs (Slack, Bot Connector, Twilio) subclass it and only say what they serve
(`make_app`); starting, finding the port, stopping and the context manager are here, once.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from types import TracebackType
from typing import Self

from aiohttp import web


class LoopbackServer:
    name = "fake-server"

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = 0
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None

    def make_app(self) -> web.Application:
        raise NotImplementedError

    def on_started(self) -> None:
        """Called in the server's thread once the port is known."""

    def run_in_loop(self, coro: object, timeout: float) -> object:
        """Run a coroutine on the server's loop (e.g. to push on one of its WebSockets) and wait for it."""
        assert self._loop is not None, "the server is not running"
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)  # type: ignore[arg-type]

    def start(self) -> Self:
        ready = threading.Event()
        errors: list[BaseException] = []

        async def serve() -> None:
            self._stopping = asyncio.Event()
            runner = web.AppRunner(self.make_app(), access_log=None, handle_signals=False, shutdown_timeout=0.5)
            await runner.setup()
            site = web.TCPSite(runner, self.host, self.port)
            await site.start()
            self.port = runner.addresses[0][1]
            self.on_started()
            ready.set()
            try:
                await self._stopping.wait()
            finally:
                await runner.cleanup()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                loop.run_until_complete(serve())
            except BaseException as exc:  # surfaced by start() instead of dying silently in the thread
                errors.append(exc)
                ready.set()
            finally:
                loop.close()

        self._thread = threading.Thread(target=run, name=self.name, daemon=True)
        self._thread.start()
        if not ready.wait(10.0) or errors:
            raise RuntimeError(f"{self.name} did not start: {errors}")
        return self

    def stop(self) -> None:
        if self._thread is None:
            return
        if self._loop is not None and self._stopping is not None and not self._loop.is_closed():
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._stopping.set)
        self._thread.join(10.0)
        self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
