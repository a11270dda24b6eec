"""A real SMTP server on 127.0.0.1 for tests and benchmarks (aiosmtpd in its own thread).

    with FakeSMTP(tls=True, auth=("u", "p")) as smtp:
        settings = EmailSettings(host=smtp.host, port=smtp.port, ca_file=smtp.ca_pem_path, ...)
        ...
        smtp.messages[0].message["Subject"]

- tls=True: STARTTLS offered and required before MAIL/AUTH (certificate for 127.0.0.1 and
  localhost from a throwaway trustme CA; `ca_pem_path` is that CA as a PEM file for `ca_file`).
- implicit_tls=True: TLS from the first byte (what `use_tls` talks to).
- auth=(user, password): AUTH PLAIN/LOGIN accepts exactly that pair and refuses others with 535.
- fail_recipient(address, code): RCPT TO that address gets `code` (550 -> permanent, 451 -> temporary).
- fail_data(code): the DATA of every message gets `code` until fail_data(None).
- idle_timeout: seconds after which the server hangs up on an idle client (pool tests).
"""

from __future__ import annotations

import shutil
import ssl
import tempfile
import threading
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from types import TracebackType
from typing import Any

import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

DEFAULT_TEXTS = {
    421: "Service not available, closing channel",
    450: "Mailbox unavailable",
    451: "Requested action aborted: local error in processing",
    452: "Insufficient system storage",
    550: "Mailbox unavailable",
    551: "User not local",
    552: "Exceeded storage allocation",
    553: "Mailbox name not allowed",
    554: "Transaction failed",
}


@dataclass(frozen=True, slots=True)
class ReceivedMail:
    mail_from: str
    rcpt_tos: tuple[str, ...]
    message: EmailMessage
    raw: bytes
    authenticated_as: str | None
    tls: bool
    peer: tuple[str, int]  # the client's address and port: one per SMTP connection
    received_at: float  # time.time()
    monotonic: float


class _PortZeroController(Controller):
    """Binds port 0 and learns the real port before aiosmtpd's readiness probe connects to it."""

    def _create_server(self) -> Awaitable[Any]:
        async def create() -> Any:
            server = await self.loop.create_server(
                self._factory_invoker, host=self.hostname, port=self.port, ssl=self.ssl_context
            )
            self.port = server.sockets[0].getsockname()[1]
            return server

        return create()


class _Handler:
    def __init__(self, fake: FakeSMTP) -> None:
        self.fake = fake

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        code = self.fake.recipient_failures.get(address.lower())
        if code is not None:
            return f"{code} {DEFAULT_TEXTS.get(code, 'Refused')}"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        code = self.fake.data_failure
        if code is not None:
            return f"{code} {DEFAULT_TEXTS.get(code, 'Refused')}"
        raw = envelope.original_content or b""
        if isinstance(envelope.content, bytes) and not raw:
            raw = envelope.content
        parsed = BytesParser(policy=policy.default).parsebytes(raw)
        login = session.auth_data.login.decode() if isinstance(session.auth_data, LoginPassword) else None
        self.fake._record(
            ReceivedMail(
                mail_from=envelope.mail_from or "",
                rcpt_tos=tuple(envelope.rcpt_tos),
                message=parsed,  # type: ignore[arg-type]  # policy.default parses to EmailMessage
                raw=raw,
                authenticated_as=login if session.authenticated else None,
                tls=server.transport is not None and server.transport.get_extra_info("sslcontext") is not None,
                peer=(str(session.peer[0]), int(session.peer[1])) if session.peer else ("", 0),
                received_at=time.time(),
                monotonic=time.monotonic(),
            )
        )
        return "250 Message accepted for delivery"


class FakeSMTP:
    def __init__(
        self,
        *,
        tls: bool = False,
        implicit_tls: bool = False,
        auth: tuple[str, str] | None = None,
        host: str = "127.0.0.1",
        idle_timeout: float = 300.0,
    ) -> None:
        if tls and implicit_tls:
            raise ValueError("tls (STARTTLS) and implicit_tls are exclusive")
        self.host = host
        self.port = 0
        self.tls = tls
        self.implicit_tls = implicit_tls
        self.auth = auth
        self.idle_timeout = idle_timeout
        self.recipient_failures: dict[str, int] = {}
        self.data_failure: int | None = None
        self.auth_attempts: list[tuple[str, bool]] = []
        self._messages: list[ReceivedMail] = []
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self._controller: Controller | None = None
        self._tmpdir: str | None = None
        self.ca: trustme.CA | None = None
        self.ca_pem_path: str | None = None

    # -- control

    def fail_recipient(self, address: str, code: int | None) -> None:
        """RCPT TO `address` is answered with `code` from now on (None: accepted again)."""
        if code is None:
            self.recipient_failures.pop(address.lower(), None)
        else:
            self.recipient_failures[address.lower()] = code

    def fail_data(self, code: int | None) -> None:
        self.data_failure = code

    # -- what arrived

    @property
    def messages(self) -> list[ReceivedMail]:
        with self._lock:
            return list(self._messages)

    @property
    def connections(self) -> int:
        """How many distinct client connections delivered messages."""
        return len({m.peer for m in self.messages})

    def clear(self) -> None:
        with self._lock:
            self._messages.clear()

    def wait_for(self, count: int, timeout: float = 5.0) -> list[ReceivedMail]:
        """Block until at least `count` messages arrived (TimeoutError if they do not)."""
        deadline = time.monotonic() + timeout
        with self._arrived:
            while len(self._messages) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{len(self._messages)} of {count} messages arrived")
                self._arrived.wait(left)
            return list(self._messages)

    def _record(self, mail: ReceivedMail) -> None:
        with self._arrived:
            self._messages.append(mail)
            self._arrived.notify_all()

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        ok = (
            self.auth is not None
            and isinstance(auth_data, LoginPassword)
            and (auth_data.login.decode(), auth_data.password.decode()) == self.auth
        )
        login = auth_data.login.decode(errors="replace") if isinstance(auth_data, LoginPassword) else "?"
        self.auth_attempts.append((login, ok))
        # handled=False: aiosmtpd answers the failure itself (535), the client does not wait for a reply.
        return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)

    # -- lifecycle

    def _server_context(self) -> ssl.SSLContext:
        self.ca = trustme.CA()
        cert = self.ca.issue_cert("127.0.0.1", "localhost", "::1")
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        cert.configure_cert(ctx)
        self._tmpdir = tempfile.mkdtemp(prefix="fake-smtp-")
        path = Path(self._tmpdir) / "ca.pem"
        self.ca.cert_pem.write_to_path(str(path))
        self.ca_pem_path = str(path)
        return ctx

    def start(self) -> FakeSMTP:
        ctx = self._server_context() if (self.tls or self.implicit_tls) else None
        kwargs: dict[str, Any] = {
            "hostname": self.host,
            "port": 0,
            "server_hostname": "localhost",
            "ready_timeout": 5.0,
            # A message is parsed from the exact bytes sent, not from a re-decoded string.
            "decode_data": False,
            "auth_require_tls": bool(ctx),
            "timeout": self.idle_timeout,  # the server hangs up on a client idle this long
        }
        if self.auth is not None:
            kwargs["authenticator"] = self._authenticate
        if self.tls:
            kwargs["tls_context"] = ctx
            kwargs["require_starttls"] = True
        if self.implicit_tls:
            kwargs["ssl_context"] = ctx
        controller = _PortZeroController(_Handler(self), **kwargs)
        controller.start()
        self._controller = controller
        self.port = controller.port
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None

    def __enter__(self) -> FakeSMTP:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
