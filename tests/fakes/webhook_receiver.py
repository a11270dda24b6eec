"""A fast webhook receiver on 127.0.0.1 that records every request and fails on demand.

In-process (tests), serving from its own thread and event loop:

    with WebhookReceiver(secret="s3cret") as rx:
        ... POST to rx.url ...
        rx.requests[0].signature_ok, rx.requests[0].key, rx.requests[0].json()
        rx.fail_next(3, "500")            # the next 3 requests get a 500
        rx.fail_rate(0.1, "reset", seed=7)  # then 10% of requests at random, reproducibly
        rx.wait_for(5)                    # block until 5 requests arrived

As a separate process (benchmarks), so the sender under test does not share its CPU:

    python -m tests.fakes.webhook_receiver --port 0 [--secret S] [--enforce-signature] [--no-keep]
    # prints the port on the first line of stdout, serves until SIGINT/SIGTERM

    with WebhookReceiverProcess(secret="s") as proc:   # starts the above, reads the port
        proc.url; proc.client.fail_rate(0.05, "500"); proc.client.stats()

Failure modes: "500" (or any 3-digit status: "404", "503", ...), "429" (with Retry-After,
default 1), "slow" (answers 200 only after `slow_seconds`, past a sender's timeout), "reset"
(closes the socket with an RST, no response), "redirect" (302 to /redirected). "ok" is a plain 200.

Control API (any path under /_ is never recorded):
    GET  /_stats[?keys=0]   {"count", "accepted", "outcomes", "unique_keys", "duplicates_accepted",
                             "signature_failures", "max_rps_per_path", "first_monotonic",
                             "last_monotonic", and unless keys=0: "arrivals" {key: [monotonic..]},
                             "accepted_by_key" {key: n}}
    POST /_control          JSON with any of: {"fail_next": {"count": 3, "mode": "500"},
                             "fail_rate": {"fraction": 0.1, "mode": "500", "seed": 1},
                             "clear_failures": true, "reset": true, "slow_seconds": 2.0,
                             "retry_after": "1"}; answers the failure plan now in force.
Monotonic times are time.monotonic() of the receiver's process: on Linux it is the same clock
in every process, so a benchmark can compare them with its own.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy

from notifiers.signing import verify
from tests.fakes.faults import abort_with_rst

HOOK_PATH = "/webhook"
MODES = ("ok", "500", "429", "slow", "reset", "redirect")


def _check_mode(mode: str) -> str:
    if mode in MODES or (len(mode) == 3 and mode.isdigit() and 200 <= int(mode) < 600):
        return mode
    raise ValueError(f"unknown failure mode {mode!r}; one of {', '.join(MODES)} or a 3-digit status")


@dataclass(frozen=True, slots=True)
class ReceivedRequest:
    method: str
    path: str
    query: str
    headers: CIMultiDictProxy[str]
    body: bytes
    received_at: float  # time.time()
    monotonic: float  # time.monotonic()
    signature_ok: bool | None  # None when the receiver has no secret
    outcome: str  # the mode served: "ok", "500", "429", "slow", "reset", "redirect", "401", ...

    @property
    def key(self) -> str | None:
        """The delivery (idempotency) key the sender put in X-Backorder-Delivery."""
        return self.headers.get("X-Backorder-Delivery")

    def json(self) -> Any:
        return json.loads(self.body)


class _State:
    """Everything the handlers share; guarded by one lock since tests read it from another thread."""

    def __init__(self, *, secret: str | None, enforce_signature: bool, keep_requests: bool) -> None:
        self.secret = secret
        self.enforce_signature = enforce_signature
        self.keep_requests = keep_requests
        self.slow_seconds = 2.0
        self.retry_after = "1"
        self.redirect_location = "/redirected"  # where "redirect" points: anywhere, for the SSRF tests
        self.lock = threading.Lock()
        self.arrived = threading.Condition(self.lock)
        self.queued: deque[str] = deque()
        self.rate_fraction = 0.0
        self.rate_modes: tuple[str, ...] = ("500",)
        self.rng = random.Random(0)
        self.reset_stats()

    def reset_stats(self) -> None:
        self.requests: list[ReceivedRequest] = []
        self.count = 0
        self.accepted = 0
        self.outcomes: Counter[str] = Counter()
        self.signature_failures = 0
        self.arrivals: dict[str, list[float]] = {}
        self.accepted_by_key: Counter[str] = Counter()
        self.windows: dict[str, deque[float]] = {}
        self.max_rps: dict[str, int] = {}
        self.first_monotonic: float | None = None
        self.last_monotonic: float | None = None

    def next_mode(self) -> str:
        if self.queued:
            return self.queued.popleft()
        if self.rate_fraction > 0 and self.rng.random() < self.rate_fraction:
            return self.rng.choice(self.rate_modes)
        return "ok"

    def plan(self) -> dict[str, Any]:
        return {
            "queued": list(self.queued),
            "fail_rate": {"fraction": self.rate_fraction, "modes": list(self.rate_modes)},
            "slow_seconds": self.slow_seconds,
            "retry_after": self.retry_after,
        }

    def record(self, req: ReceivedRequest) -> None:
        """Called with the lock held."""
        self.count += 1
        self.outcomes[req.outcome] += 1
        if req.signature_ok is False:
            self.signature_failures += 1
        if self.first_monotonic is None:
            self.first_monotonic = req.monotonic
        self.last_monotonic = req.monotonic
        key = req.key
        if key is not None:
            self.arrivals.setdefault(key, []).append(req.monotonic)
        if req.outcome in ("ok", "slow") or (req.outcome.isdigit() and 200 <= int(req.outcome) < 300):
            self.accepted += 1
            if key is not None:
                self.accepted_by_key[key] += 1
        # Requests in the last second, per path: a sliding window, so a burst straddling a
        # second boundary is not split in two.
        window = self.windows.setdefault(req.path, deque())
        window.append(req.monotonic)
        while window and window[0] <= req.monotonic - 1.0:
            window.popleft()
        if len(window) > self.max_rps.get(req.path, 0):
            self.max_rps[req.path] = len(window)
        if self.keep_requests:
            self.requests.append(req)
        self.arrived.notify_all()

    def stats(self, *, keys: bool = True) -> dict[str, Any]:
        with self.lock:
            out: dict[str, Any] = {
                "count": self.count,
                "accepted": self.accepted,
                "outcomes": dict(self.outcomes),
                "unique_keys": len(self.arrivals),
                "duplicates_accepted": sum(n - 1 for n in self.accepted_by_key.values() if n > 1),
                "signature_failures": self.signature_failures,
                "max_rps_per_path": dict(self.max_rps),
                "first_monotonic": self.first_monotonic,
                "last_monotonic": self.last_monotonic,
            }
            if keys:
                out["arrivals"] = {k: list(v) for k, v in self.arrivals.items()}
                out["accepted_by_key"] = dict(self.accepted_by_key)
            return out

    def control(self, cmd: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            if cmd.get("reset"):
                self.reset_stats()
            if cmd.get("clear_failures"):
                self.queued.clear()
                self.rate_fraction = 0.0
            if "slow_seconds" in cmd:
                self.slow_seconds = float(cmd["slow_seconds"])
            if "retry_after" in cmd:
                self.retry_after = str(cmd["retry_after"])
            if (nxt := cmd.get("fail_next")) is not None:
                self.queued.extend([_check_mode(str(nxt["mode"]))] * int(nxt.get("count", 1)))
            if (rate := cmd.get("fail_rate")) is not None:
                modes = rate.get("modes") or [rate.get("mode", "500")]
                self.rate_modes = tuple(_check_mode(str(m)) for m in modes)
                self.rate_fraction = float(rate.get("fraction", 0.0))
                self.rng = random.Random(rate.get("seed", 0))
            return self.plan()


def make_app(state: _State, stopping: asyncio.Event) -> web.Application:
    async def stats(request: web.Request) -> web.Response:
        return web.json_response(state.stats(keys=request.query.get("keys", "1") not in ("0", "false")))

    async def control(request: web.Request) -> web.Response:
        try:
            return web.json_response(state.control(await request.json()))
        except (ValueError, KeyError, TypeError) as exc:
            return web.json_response({"error": str(exc)}, status=400)

    async def hook(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        now, mono = time.time(), time.monotonic()
        sig_ok: bool | None = None
        if state.secret is not None:
            sig_ok = verify(
                state.secret,
                request.headers.get("X-Backorder-Timestamp"),
                body,
                request.headers.get("X-Backorder-Signature"),
                now=now,
            )
        with state.lock:
            mode = "401" if sig_ok is False and state.enforce_signature else state.next_mode()
            slow_seconds, retry_after = state.slow_seconds, state.retry_after
            state.record(
                ReceivedRequest(
                    method=request.method,
                    path=request.path,
                    query=request.query_string,
                    headers=CIMultiDictProxy(CIMultiDict(request.headers)),
                    body=body,
                    received_at=now,
                    monotonic=mono,
                    signature_ok=sig_ok,
                    outcome=mode,
                )
            )
            request_id = f"rx-{state.count}"
        if mode == "reset":
            abort_with_rst(request)
            # Nothing can be answered on an aborted transport; stop the handler without aiohttp
            # trying to write (and logging) a response.
            raise asyncio.CancelledError
        if mode == "slow":
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), slow_seconds)
            mode = "ok"
        if mode == "ok":
            return web.json_response({"ok": True}, headers={"X-Request-Id": request_id})
        if mode == "redirect":
            return web.Response(status=302, headers={"Location": state.redirect_location})
        headers = {"Retry-After": retry_after} if mode == "429" else {}
        return web.Response(status=int(mode), text=f"fake failure {mode}\n", headers=headers)

    app = web.Application(client_max_size=16 * 1024 * 1024)
    app.router.add_get("/_stats", stats)
    app.router.add_post("/_control", control)
    app.router.add_route("*", "/{tail:.*}", hook)
    return app


async def _serve(state: _State, host: str, port: int, stopping: asyncio.Event, ready: Callable[[int], None]) -> None:
    """Serve until `stopping` is set; `ready(port)` is called once the socket listens."""
    runner = web.AppRunner(make_app(state, stopping), access_log=None, handle_signals=False, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, host, port, backlog=1024)
    await site.start()
    ready(runner.addresses[0][1])  # the port actually bound when asked for port 0
    try:
        await stopping.wait()
    finally:
        await runner.cleanup()


class WebhookReceiver:
    """The receiver in a background thread with its own event loop (for tests)."""

    def __init__(
        self,
        *,
        secret: str | None = None,
        enforce_signature: bool = False,
        keep_requests: bool = True,
        host: str = "127.0.0.1",
        port: int = 0,
        slow_seconds: float = 2.0,
        retry_after: str = "1",
    ) -> None:
        self.host = host
        self.port = port
        self._state = _State(secret=secret, enforce_signature=enforce_signature, keep_requests=keep_requests)
        self._state.slow_seconds = slow_seconds
        self._state.retry_after = retry_after
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._error: BaseException | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def url(self) -> str:
        """The URL to configure as the webhook endpoint."""
        return self.base_url + HOOK_PATH

    def url_for(self, path: str) -> str:
        return self.base_url + (path if path.startswith("/") else "/" + path)

    # -- control

    def fail_next(self, count: int, mode: str) -> None:
        self._state.control({"fail_next": {"count": count, "mode": mode}})

    def redirect_to(self, location: str) -> None:
        """The Location of the "redirect" mode's 302 (default /redirected)."""
        self._state.redirect_location = location

    def fail_rate(self, fraction: float, mode: str | list[str] = "500", *, seed: int = 0) -> None:
        modes = [mode] if isinstance(mode, str) else list(mode)
        self._state.control({"fail_rate": {"fraction": fraction, "modes": modes, "seed": seed}})

    def clear_failures(self) -> None:
        self._state.control({"clear_failures": True})

    def reset(self) -> None:
        """Forget every request and statistic (the failure plan stays)."""
        self._state.control({"reset": True})

    @property
    def slow_seconds(self) -> float:
        return self._state.slow_seconds

    @slow_seconds.setter
    def slow_seconds(self, value: float) -> None:
        self._state.control({"slow_seconds": value})

    # -- what arrived

    @property
    def requests(self) -> list[ReceivedRequest]:
        with self._state.lock:
            return list(self._state.requests)

    def stats(self, *, keys: bool = True) -> dict[str, Any]:
        return self._state.stats(keys=keys)

    def wait_for(self, count: int, timeout: float = 5.0) -> list[ReceivedRequest]:
        """Block until at least `count` requests arrived (TimeoutError if they do not)."""
        deadline = time.monotonic() + timeout
        with self._state.arrived:
            while self._state.count < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{self._state.count} of {count} requests arrived")
                self._state.arrived.wait(left)
            return list(self._state.requests)

    # -- lifecycle

    def start(self) -> WebhookReceiver:
        ready = threading.Event()

        def on_ready(port: int) -> None:
            self.port = port
            ready.set()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            self._stopping = asyncio.Event()
            try:
                loop.run_until_complete(_serve(self._state, self.host, self.port, self._stopping, on_ready))
            except BaseException as exc:  # surfaced by start() instead of dying silently in the thread
                self._error = exc
                ready.set()
            finally:
                loop.close()

        self._thread = threading.Thread(target=run, name="fake-webhook-receiver", daemon=True)
        self._thread.start()
        if not ready.wait(10.0):
            raise RuntimeError("webhook receiver did not start")
        if self._error is not None:
            raise RuntimeError(f"webhook receiver failed to start: {self._error}") from self._error
        return self

    def stop(self) -> None:
        if self._thread is None:
            return
        if self._loop is not None and self._stopping is not None and not self._loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop ended on its own
                self._loop.call_soon_threadsafe(self._stopping.set)
        self._thread.join(10.0)
        self._thread = None

    def __enter__(self) -> WebhookReceiver:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


class ReceiverClient:
    """The control API of a receiver running elsewhere (a WebhookReceiverProcess), over HTTP."""

    def __init__(self, base_url: str, *, timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout

    def _call(self, path: str, payload: dict[str, Any] | None = None) -> dict[str, Any]:
        data = json.dumps(payload).encode() if payload is not None else None
        req = urllib.request.Request(
            self.base_url + path, data=data, headers={"Content-Type": "application/json"} if data else {}
        )
        with urllib.request.urlopen(req, timeout=self.timeout) as resp:
            result: dict[str, Any] = json.loads(resp.read())
            return result

    def stats(self, *, keys: bool = True) -> dict[str, Any]:
        return self._call("/_stats" + ("" if keys else "?keys=0"))

    def control(self, **cmd: Any) -> dict[str, Any]:
        return self._call("/_control", cmd)

    def fail_next(self, count: int, mode: str) -> dict[str, Any]:
        return self.control(fail_next={"count": count, "mode": mode})

    def fail_rate(self, fraction: float, mode: str | list[str] = "500", *, seed: int = 0) -> dict[str, Any]:
        modes = [mode] if isinstance(mode, str) else list(mode)
        return self.control(fail_rate={"fraction": fraction, "modes": modes, "seed": seed})

    def clear_failures(self) -> dict[str, Any]:
        return self.control(clear_failures=True)

    def reset(self) -> dict[str, Any]:
        return self.control(reset=True)


class WebhookReceiverProcess:
    """`python -m tests.fakes.webhook_receiver` as a child process (for benchmarks)."""

    def __init__(
        self,
        *,
        secret: str | None = None,
        enforce_signature: bool = False,
        keep_requests: bool = False,
        port: int = 0,
        slow_seconds: float = 2.0,
    ) -> None:
        self.args = ["--port", str(port), "--slow-seconds", str(slow_seconds)]
        if secret is not None:
            self.args += ["--secret", secret]
        if enforce_signature:
            self.args.append("--enforce-signature")
        if not keep_requests:
            self.args.append("--no-keep")
        self.host = "127.0.0.1"
        self.port = port
        self.proc: subprocess.Popen[str] | None = None
        self.client = ReceiverClient(self.base_url)

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return self.base_url + HOOK_PATH

    def start(self) -> WebhookReceiverProcess:
        root = Path(__file__).resolve().parents[2]
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(root), env.get("PYTHONPATH", "")) if p)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.fakes.webhook_receiver", *self.args],
            cwd=root,
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        if not line.isdigit():
            self.stop()
            raise RuntimeError(f"webhook receiver process did not report its port (got {line!r})")
        self.port = int(line)
        self.client = ReceiverClient(self.base_url)
        return self

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5.0)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5.0)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self.proc = None

    def __enter__(self) -> WebhookReceiverProcess:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Fake webhook receiver (tests and benchmarks).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0: any free port (printed on stdout)")
    parser.add_argument("--secret", default=None, help="verify X-Backorder-Signature with this secret")
    parser.add_argument("--enforce-signature", action="store_true", help="answer 401 to a bad signature")
    parser.add_argument("--no-keep", action="store_true", help="count requests without keeping their bodies")
    parser.add_argument("--slow-seconds", type=float, default=2.0, help="how long the `slow` mode waits")
    args = parser.parse_args(argv)

    state = _State(secret=args.secret, enforce_signature=args.enforce_signature, keep_requests=not args.no_keep)
    state.slow_seconds = args.slow_seconds

    async def run() -> None:
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stopping.set)

        def ready(port: int) -> None:
            print(port, flush=True)

        await _serve(state, args.host, args.port, stopping, ready)

    asyncio.run(run())


if __name__ == "__main__":
    main()
