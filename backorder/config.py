"""Configuration: defaults < backorder.toml (or $BACKORDER_CONFIG) < BACKORDER_* environment.

Every key is documented in docs/configuration.md; a test keeps that page and these models in step.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from allocation.policy import DEFAULT_PRIORITY_KEY, AllocationPolicy, SeverityThresholds

DEFAULT_DATABASE_URL = "sqlite:///backorder.db"


class AllocationSettings(BaseModel):
    policy: str = Field("fifo", description="fifo or priority")
    priority_key: list[str] = Field(
        default_factory=lambda: list(DEFAULT_PRIORITY_KEY),
        description="priority policy: order of keys among tier, rush, promised_date, order_value, "
        "line_value, fifo",
    )
    warehouse_order: list[str] = Field(
        default_factory=list, description="warehouses tried after the customer's region, in this order"
    )
    allow_split: bool = Field(True, description="a line may draw from several warehouses")
    receiving_buffer_days: int = Field(1, ge=0, description="days from PO arrival to a line's ETA")


class SeveritySettings(BaseModel):
    medium_days: int = Field(3, ge=0, description="days late from which a backorder is medium")
    high_days: int = Field(7, ge=0, description="days late from which it is high")
    critical_days: int = Field(14, ge=0, description="days late from which it is critical")
    high_value: float = Field(1000.0, ge=0, description="waiting value from which it is high")
    critical_value: float = Field(5000.0, ge=0, description="waiting value from which it is critical")


HHMM = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"
CHANNELS = ("console", "email", "sms", "whatsapp", "webhook", "slack", "teams")


class EmailSettings(BaseModel):
    host: str | None = Field(None, description="SMTP server; e-mail is not configured while unset")
    port: int = Field(587, ge=1, le=65535, description="SMTP port")
    username: str | None = Field(None, description="SMTP login")
    password: SecretStr | None = Field(None, description="SMTP password (from the environment or a file)")
    starttls: bool = Field(True, description="upgrade the connection with STARTTLS before login")
    use_tls: bool = Field(False, description="implicit TLS from the first byte (port 465)")
    ca_file: str | None = Field(None, description="CA bundle that signs the server's certificate")
    from_address: str = Field("backorders@localhost", description="the From: address")
    timeout_seconds: float = Field(10.0, gt=0, description="connect and command timeout")


class WebhookEndpoint(BaseModel):
    url: str = Field(description="where decisions are POSTed")
    secret: SecretStr | None = Field(None, description="HMAC-SHA256 signing secret")
    events: list[str] = Field(default_factory=list, description="domain event types sent; empty: all")


class WebhookSettings(BaseModel):
    url: str | None = Field(None, description="one endpoint for decision sync; more under endpoints")
    secret: SecretStr | None = Field(None, description="signing secret of `url`")
    endpoints: list[WebhookEndpoint] = Field(default_factory=list, description="further endpoints (file only)")
    allow_http: bool = Field(False, description="accept http:// URLs (local development only)")
    allow_private: bool = Field(False, description="accept loopback and private addresses")
    timeout_seconds: float = Field(5.0, gt=0, description="per request")

    def all_endpoints(self) -> list[WebhookEndpoint]:
        first = [WebhookEndpoint(url=self.url, secret=self.secret)] if self.url else []
        return first + list(self.endpoints)


class QuietHours(BaseModel):
    start: str = Field(pattern=HHMM)
    end: str = Field(pattern=HHMM)


class SegmentFilter(BaseModel):
    tiers: list[str] = Field(default_factory=list)
    regions: list[str] = Field(default_factory=list)
    tags: list[str] = Field(default_factory=list)
    sources: list[str] = Field(default_factory=list)
    customers: list[str] = Field(default_factory=list)


class RuleSettings(BaseModel):
    enabled: bool = True
    exclude: SegmentFilter = Field(default_factory=SegmentFilter)
    hours: QuietHours | None = None  # only sent inside this local window; outside it waits
    urgent: bool = False  # sent through quiet hours and never folded into a digest
    roles: list[str] = Field(default_factory=list)  # internal kinds: who hears it


class NotifySettings(BaseModel):
    default_channel: str = Field("console", description="customers' channel when they chose none")
    eta_change_min_days: int = Field(1, ge=0, description="eta_changed only when the date moves by more")
    high_value_threshold: float = Field(1000.0, ge=0, description="high_value_backorder from this waiting value")
    shipped_only_backorders: bool = Field(True, description="shipped notices only for lines that waited")
    max_attempts: int = Field(8, ge=1, description="sends tried before a message is dead")
    backoff_seconds: float = Field(2.0, gt=0, description="first retry delay; doubles, with jitter")
    backoff_max_seconds: float = Field(900.0, gt=0, description="longest retry delay")
    max_age_hours: float = Field(48.0, gt=0, description="a message older than this is dead, not sent")
    digest_at: str = Field("18:00", pattern=HHMM, description="customers' digest time when they chose none")
    ops_digest_at: str = Field("08:00", pattern=HHMM, description="daily ops digest, in ops_timezone")
    ops_timezone: str = Field("UTC", description="time zone of the ops digest and of staff quiet hours")
    batch_size: int = Field(200, ge=1, le=5000, description="outbox rows a worker claims at once")
    concurrency: int = Field(64, ge=1, description="sends a worker has in flight")
    lease_seconds: float = Field(60.0, gt=0, description="a claimed row returns to the pool after this")
    poll_seconds: float = Field(0.1, gt=0, description="idle worker's wait between outbox polls")
    jobs_every_seconds: float = Field(15.0, gt=0, description="how often a worker looks for due [schedule] jobs")
    rate_per_destination: dict[str, float] = Field(
        default_factory=lambda: {"sms": 1.0, "whatsapp": 1.0, "slack": 1.0, "teams": 7.0, "email": 5.0},
        description="messages/s to one address, per channel (absent: unlimited)",
    )
    rate_per_channel: dict[str, float] = Field(
        default_factory=dict, description="messages/s over a whole channel (absent: unlimited)"
    )
    rules: dict[str, RuleSettings] = Field(default_factory=dict, description="per kind: see docs")

    @field_validator("default_channel")
    @classmethod
    def _known_channel(cls, v: str) -> str:
        if v not in CHANNELS:
            raise ValueError(f"unknown channel {v!r}; one of {', '.join(CHANNELS)}")
        return v


class LLMSettings(BaseModel):
    base_url: str | None = Field(None, description="an OpenAI-compatible API, e.g. http://127.0.0.1:8080/v1")
    model: str | None = Field(None, description="the model to ask; no LLM is used while unset")
    api_key: SecretStr | None = Field(None, description="API key; OPENAI_API_KEY is used when unset")
    timeout_seconds: float = Field(5.0, gt=0, description="per request; on a timeout the rules' answer stands")

    def key(self) -> str | None:
        if self.api_key is not None:
            return self.api_key.get_secret_value()
        return os.environ.get("OPENAI_API_KEY")

    @property
    def enabled(self) -> bool:
        return bool(self.model and (self.base_url or self.key()))


DRAFT_KINDS = ("delay_notice", "substitution_offer", "partial_shipment_offer", "question_reply")
DRAFT_MODES = ("approve", "auto", "template")


def _default_policy() -> dict[str, dict[str, str]]:
    personal = {"platinum": "approve", "gold": "approve", "default": "template"}
    return {"delay_notice": dict(personal), "substitution_offer": dict(personal),
            "partial_shipment_offer": dict(personal), "question_reply": {"default": "approve"}}


class DraftSettings(BaseModel):
    """AI-drafted customer messages and who must approve them (docs/approvals.md)."""

    policy: dict[str, dict[str, str]] = Field(
        default_factory=_default_policy,
        description="per draft kind, per customer tier (or default): approve | auto | template")
    approval_above_value: float = Field(
        1000.0, ge=0, description="a message about an order worth more than this always waits for approval")
    expire_hours: float = Field(24.0, gt=0, description="a draft nobody decided on expires after this")
    approval_sla_minutes: float = Field(60.0, gt=0, description="undecided this long: escalated to the lead")
    expired_send_template: bool = Field(
        True, description="when a delay-notice draft expires, the template notice goes out instead")
    max_chars: int = Field(1200, ge=100, le=4000, description="longest draft text (and edited text) accepted")
    unknown_questions_to_team: bool = Field(
        True, description="a customer question the intents cannot answer goes to a person, with a drafted reply")
    approver_roles: list[str] = Field(
        default_factory=lambda: ["approver"], description="staff roles that may approve, edit or reject")

    @field_validator("policy")
    @classmethod
    def _known(cls, policy: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
        merged = _default_policy()
        for kind, tiers in policy.items():
            if kind not in DRAFT_KINDS:
                raise ValueError(f"{kind}: unknown draft kind; one of {', '.join(DRAFT_KINDS)}")
            for tier, mode in tiers.items():
                if mode not in DRAFT_MODES:
                    raise ValueError(f"{kind}.{tier}: {mode!r} is not one of {', '.join(DRAFT_MODES)}")
            merged[kind] = {**merged[kind], **tiers}  # a tier not named keeps its default
        return merged

    def mode(self, kind: str, tier: str, order_value: float = 0.0) -> str:
        """approve | auto | template for a message of `kind` to a customer of `tier` about an order this big."""
        if order_value > self.approval_above_value:
            return "approve"
        tiers = self.policy.get(kind) or {}
        return tiers.get(tier) or tiers.get("default") or "template"


class SubstituteSettings(BaseModel):
    """Which products may stand in for a backordered one (allocation/substitutes.py)."""

    enabled: bool = Field(True, description="offer substitutes to customers whose lines wait")
    max_price_diff_pct: float = Field(15.0, ge=0, description="a candidate's price within this % of the original")
    min_similarity: float = Field(0.5, ge=0, le=1, description="same-category candidates need this similarity")
    max_candidates: int = Field(5, ge=1, le=50, description="candidates shown by GET /substitutes")
    same_region_only: bool = Field(
        False, description="only warehouses in the customer's region can serve them")


TASK_KINDS = ("procurement_review", "inventory_check", "handoff", "purchase_suggestion", "transfer_suggestion")
DEFAULT_TASK_OWNERS = {"procurement_review": "procurement", "inventory_check": "warehouse_manager",
                       "handoff": "customer_service", "purchase_suggestion": "procurement",
                       "transfer_suggestion": "warehouse_manager"}
# A hand-off keeps a customer waiting on a person, so it is due soonest; a purchase review waits on suppliers anyway.
DEFAULT_TASK_SLA_HOURS = {"procurement_review": 24.0, "inventory_check": 8.0, "handoff": 4.0,
                          "purchase_suggestion": 24.0, "transfer_suggestion": 12.0}


class TaskSettings(BaseModel):
    """Tasks' owners and deadlines, and who hears of an overdue one (docs/tasks.md)."""

    owner_roles: dict[str, str] = Field(
        default_factory=lambda: dict(DEFAULT_TASK_OWNERS), description="per task kind: the staff role that works it")
    sla_hours: dict[str, float] = Field(
        default_factory=lambda: dict(DEFAULT_TASK_SLA_HOURS), description="per task kind: hours until it is due")
    default_sla_hours: float = Field(24.0, gt=0, description="hours until a task of a kind not in sla_hours is due")
    leads: dict[str, str] = Field(
        default_factory=dict, description="per role: the staff id of its lead, who hears of its overdue tasks")
    lead_channels: list[str] = Field(
        default_factory=lambda: ["slack", "teams", "email", "sms"],
        description="a lead's channels in order of preference (the first they have an account on is used)")

    @field_validator("owner_roles")
    @classmethod
    def _owners(cls, given: dict[str, str]) -> dict[str, str]:
        for kind, role in given.items():
            _known_kind(kind)
            if not (role[:1].isalpha() and role == role.lower() and role.replace("_", "").isalnum()):
                raise ValueError(f"{kind}: {role!r} is not a role name (lower case letters, digits, _)")
        return {**DEFAULT_TASK_OWNERS, **given}  # a kind not named keeps its default

    @field_validator("sla_hours")
    @classmethod
    def _slas(cls, given: dict[str, float]) -> dict[str, float]:
        for kind, hours in given.items():
            _known_kind(kind)
            if not hours > 0:
                raise ValueError(f"{kind}: {hours} hours; an SLA must be more than 0 hours")
        return {**DEFAULT_TASK_SLA_HOURS, **given}

    @field_validator("leads")
    @classmethod
    def _leads(cls, given: dict[str, str]) -> dict[str, str]:
        for role, staff_id in given.items():
            if not staff_id.strip():
                raise ValueError(f"{role}: the lead's staff id is empty")
        return given

    @field_validator("lead_channels")
    @classmethod
    def _channels(cls, given: list[str]) -> list[str]:
        for channel in given:
            if channel not in LEAD_CHANNELS:
                raise ValueError(f"unknown channel {channel!r}; one of {', '.join(LEAD_CHANNELS)}")
        if not given:
            raise ValueError("name at least one channel")
        return given

    def owner_role(self, kind: str) -> str | None:
        return self.owner_roles.get(kind)

    def sla(self, kind: str) -> float:
        return self.sla_hours.get(kind, self.default_sla_hours)


LEAD_CHANNELS = ("slack", "teams", "email", "sms", "whatsapp", "console")


def _known_kind(kind: str) -> None:
    if kind not in TASK_KINDS:
        raise ValueError(f"{kind}: unknown task kind; one of {', '.join(TASK_KINDS)}")


class StaffContact(BaseModel):
    channels: list[str] = Field(default_factory=lambda: ["console"], description="in order of preference")
    routing: str = Field("first", pattern="^(first|all)$")
    name: str | None = None
    email: str | None = None
    phone: str | None = None
    whatsapp: str | None = None
    slack_channel: str | None = None
    teams_conversation: str | None = None


E164 = r"^\+[1-9][0-9]{6,14}$"


class StaffMember(BaseModel):
    """A person of the team: their roles, and the chat accounts that are them."""

    name: str | None = None
    roles: list[str] = Field(default_factory=list)
    slack_user: str | None = None
    teams_user: str | None = None
    phone: str | None = Field(None, pattern=E164)
    email: str | None = None
    warehouse: str | None = None


class StaffSettings(BaseModel):
    warehouse_manager: StaffContact = Field(
        default_factory=lambda: StaffContact(channels=["sms", "console"]), description="high-value backorders"
    )
    procurement: StaffContact = Field(default_factory=StaffContact, description="procurement")
    customer_service: StaffContact = Field(default_factory=StaffContact, description="customer service")
    team: StaffContact = Field(default_factory=StaffContact, description="the team channel")
    approver: StaffContact | None = Field(
        None, description="where drafts wait for approval; unset: the team's contact")
    lead: StaffContact | None = Field(None, description="who hears of drafts past the approval SLA; unset: the team's")
    members: dict[str, StaffMember] = Field(
        default_factory=dict, description="people by staff id: roles and chat accounts (file only)")
    unlinked_read: bool = Field(
        False, description="Slack and Teams accounts linked to no staff member may read (never act)")

    def role(self, name: str) -> StaffContact | None:
        value = getattr(self, name, None)
        if value is None and name in ("approver", "lead"):
            return self.team
        return value if isinstance(value, StaffContact) else None


SLACK_API = "https://slack.com/api/"
TWILIO_API = "https://api.twilio.com"


class SlackSettings(BaseModel):
    bot_token: SecretStr | None = Field(None, description="xoxb- token; Slack is off while unset")
    signing_secret: SecretStr | None = Field(None, description="verifies every request Slack sends")
    api_base_url: str = Field(SLACK_API, description="Web API base URL (a local fake in tests)")
    channel: str | None = Field(None, description="channel id of team alerts (staff role `team` by default)")
    app_token: SecretStr | None = Field(None, description="xapp- token: Socket Mode instead of HTTP")

    @property
    def enabled(self) -> bool:
        return self.bot_token is not None or self.signing_secret is not None or self.app_token is not None

    @model_validator(mode="after")
    def _complete(self) -> SlackSettings:
        if not self.enabled:
            return self
        if self.bot_token is None:
            raise ValueError("slack.bot_token is needed once any [slack] credential is set")
        if self.app_token is None and self.signing_secret is None:
            raise ValueError("slack.signing_secret is needed to verify Slack's requests (or app_token for "
                             "Socket Mode)")
        if not self.api_base_url.endswith("/"):
            self.api_base_url += "/"
        return self


class TeamsSettings(BaseModel):
    app_id: str | None = Field(None, description="the bot's Microsoft app (client) id; Teams is off while unset")
    app_password: SecretStr | None = Field(None, description="its client secret")
    tenant_id: str | None = Field(None, description="the Entra tenant the bot belongs to")
    anonymous: bool = Field(False, description="accept unauthenticated requests (local development only)")
    login_base_url: str = Field("https://login.microsoftonline.com",
                                description="Entra ID token endpoint base (a local fake in tests)")

    @property
    def enabled(self) -> bool:
        return self.app_id is not None or self.anonymous

    @model_validator(mode="after")
    def _complete(self) -> TeamsSettings:
        self.login_base_url = self.login_base_url.rstrip("/")
        if self.anonymous and (self.app_id is not None or self.app_password is not None):
            # Unauthenticated requests would make the bot act, and post its real token, for anyone.
            raise ValueError("teams.anonymous is for local development without credentials: unset it, or unset "
                             "teams.app_id and teams.app_password")
        if self.app_id is not None and not self.anonymous:
            missing = [k for k in ("app_password", "tenant_id") if getattr(self, k) is None]
            if missing:
                raise ValueError(f"teams.{missing[0]} is needed with teams.app_id (or set teams.anonymous = true "
                                 "for local development only)")
        return self


class TwilioSettings(BaseModel):
    account_sid: str | None = Field(None, description="AC...; SMS and WhatsApp are off while unset")
    auth_token: SecretStr | None = Field(None, description="signs webhooks and authenticates API calls")
    api_base_url: str = Field(TWILIO_API, description="REST API base URL (a local fake in tests)")
    public_base_url: str | None = Field(None, description="the public URL Twilio calls us at (it signs it)")
    sms_from: str | None = Field(None, pattern=E164, description="E.164 sender number of SMS")
    whatsapp_from: str | None = Field(None, pattern=E164, description="E.164 WhatsApp sender number")
    messaging_service_sid: str | None = Field(None, description="MG...: send through a Messaging Service")
    whatsapp_templates: dict[str, str] = Field(
        default_factory=dict, description="per kind, the approved ContentSid used outside the 24-hour window")
    sms_mps: float = Field(1.0, gt=0, description="SMS messages per second from our sender")
    whatsapp_mps: float = Field(10.0, gt=0, description="WhatsApp messages per second from our sender")

    @property
    def enabled(self) -> bool:
        return self.account_sid is not None

    @property
    def sms(self) -> bool:
        return self.enabled and bool(self.sms_from or self.messaging_service_sid)

    @property
    def whatsapp(self) -> bool:
        return self.enabled and bool(self.whatsapp_from)

    @model_validator(mode="after")
    def _complete(self) -> TwilioSettings:
        if not self.enabled:
            return self
        if self.auth_token is None:
            raise ValueError("twilio.auth_token is needed with twilio.account_sid")
        if not self.public_base_url:
            raise ValueError("twilio.public_base_url is needed: Twilio signs the URL it calls, and we check it")
        if not (self.sms_from or self.whatsapp_from or self.messaging_service_sid):
            raise ValueError("set twilio.sms_from, twilio.whatsapp_from or twilio.messaging_service_sid")
        self.public_base_url = self.public_base_url.rstrip("/")
        self.api_base_url = self.api_base_url.rstrip("/")
        return self


class LinkSettings(BaseModel):
    """Signed links in e-mails that let a customer answer an offer (bot/offer_links.py)."""

    public_base_url: str | None = Field(
        None, description="the public URL of the bot's web pages, e.g. https://bot.example.com; unset: no links")
    secret: SecretStr | None = Field(None, description="HMAC-SHA256 key signing the links")

    @model_validator(mode="after")
    def _complete(self) -> LinkSettings:
        if not self.public_base_url:
            self.public_base_url = None
            return self
        if not self.public_base_url.startswith(("https://", "http://")):
            raise ValueError("links.public_base_url must be an http(s):// URL")
        if self.secret is None or not self.secret.get_secret_value():
            raise ValueError("links.secret is needed with links.public_base_url: it signs the links in e-mails")
        self.public_base_url = self.public_base_url.rstrip("/")
        return self


class LimitGroup(BaseModel):
    """The rate of one route group (the first path segment: events, slack, twilio, api, offers, ...)."""

    rate_per_second: float = Field(gt=0, le=1_000_000, description="requests a second a client may keep up")
    burst: int = Field(ge=1, le=1_000_000, description="requests a client may send at once")


class LimitSettings(BaseModel):
    """Per-client rate limits and request size limits of the HTTP API (bot/limits.py, docs/security.md)."""

    enabled: bool = Field(True, description="false: no rate limit (the size limits always hold)")
    rate_per_second: float = Field(1000.0, gt=0, le=1_000_000,
                                   description="requests a second one client may keep up per route group")
    burst: int = Field(2000, ge=1, le=1_000_000, description="requests one client may send at once per group")
    groups: dict[str, LimitGroup] = Field(default_factory=dict, description="per route group: its own rate")
    exempt: list[str] = Field(default_factory=lambda: ["/healthz", "/readyz"],
                              description="paths never limited (probes)")
    max_clients: int = Field(100_000, ge=100, le=10_000_000, description="buckets kept; the idlest go first")
    max_body_bytes: int = Field(1024 * 1024, ge=1024, le=1024**3, description="largest request body")
    events_max_body_bytes: int = Field(32 * 1024 * 1024, ge=1024, le=1024**3,
                                       description="largest POST /events body (up to 10,000 events)")


class DashboardSettings(BaseModel):
    """The operations dashboard (bot/dashboard.py, docs/dashboard.md)."""

    refresh_seconds: float = Field(5.0, gt=0, le=3600, description="how often open pages check for changes")
    session_hours: float = Field(12.0, gt=0, le=720, description="how long a dashboard sign-in lasts")
    top: int = Field(10, ge=1, le=100, description="rows per breakdown table (by SKU, supplier, ...)")
    window_days: int = Field(14, ge=1, le=90, description="days of fulfillment progress shown")
    kpi_days: float = Field(7.0, gt=0, le=366, description="days of notification KPIs shown")
    inbound_limit: int = Field(8, ge=1, le=100, description="next inbound purchase orders shown")


class IntakeSettings(BaseModel):
    """Backpressure: the queue depths past which /readyz, /metrics and POST /events?wait=false say the workers are
    behind (services/backlog.py). Intake still stores every event: these only warn (docs/deploy.md)."""

    backlog_warn_depth: int = Field(10_000, ge=1, le=100_000_000,
                                    description="events stored and not yet applied past which the workers are behind")
    outbox_warn_depth: int = Field(10_000, ge=1, le=100_000_000,
                                   description="messages due to be sent now past which the workers are behind")


class HealthSettings(BaseModel):
    """Worker heartbeats and what /readyz counts as alive (docs/observability.md)."""

    heartbeat_seconds: float = Field(10.0, gt=0, le=3600, description="how often a worker writes its heartbeat")
    stale_seconds: float = Field(60.0, gt=0, le=86_400,
                                 description="a heartbeat older than this no longer counts as a live worker")
    readyz_public: bool = Field(False, description="serve /readyz without the API token (for a load balancer "
                                "that cannot send one); its body names checks, never secrets")

    @model_validator(mode="after")
    def _stale_after_beats(self) -> HealthSettings:
        if self.stale_seconds <= self.heartbeat_seconds:
            raise ValueError("health.stale_seconds must be longer than health.heartbeat_seconds, "
                             "or a live worker would look dead between two beats")
        return self


class LoggingSettings(BaseModel):
    """Log records of `serve`, `worker` and `demo` (backorder/logs.py)."""

    format: str | None = Field(None, description="json or text; unset: text on a terminal, json otherwise")
    level: str = Field("INFO", description="DEBUG, INFO, WARNING, ERROR or CRITICAL")

    @field_validator("format")
    @classmethod
    def _known_format(cls, value: str | None) -> str | None:
        if value is not None and value.lower() not in ("json", "text"):
            raise ValueError(f"logging.format must be json or text, not {value!r}")
        return value.lower() if value else None

    @field_validator("level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        if value.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
            raise ValueError(f"logging.level must be DEBUG, INFO, WARNING, ERROR or CRITICAL, not {value!r}")
        return value.upper()


# The scheduler's jobs and when they run by default (services/scheduler.py holds what each one does).
DEFAULT_JOBS: dict[str, str] = {
    "allocate_nightly": "0 2 * * *",
    "overdue_check": "0 * * * *",
    "digests": "* * * * *",
    "drafts": "* * * * *",
    "weekly_report": "0 7 * * 1",
    "dead_letter_retry": "*/15 * * * *",
    "retention": "30 3 * * *",
    "task_escalation": "*/5 * * * *",
    "reorder_check": "15 * * * *",
}


class JobSettings(BaseModel):
    cron: str = Field(description="five-field cron expression, in [schedule] timezone")
    enabled: bool = Field(True, description="false: the job never runs")

    @field_validator("cron")
    @classmethod
    def _valid_cron(cls, v: str) -> str:
        from cronsim import CronSim, CronSimError

        v = " ".join(v.split())
        if len(v.split()) != 5:  # cronsim also takes a seconds field; a scheduler ticking by the minute does not
            raise ValueError(f"{v!r} is not a cron expression: it needs five fields (minute hour day month weekday)")
        try:
            CronSim(v, datetime(2026, 1, 1, tzinfo=UTC))
        except CronSimError as exc:
            raise ValueError(f"{v!r} is not a cron expression: {exc}") from None
        return v


def _known_zone(v: str) -> str:
    try:
        ZoneInfo(v)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {v!r} (an IANA name such as Europe/Berlin)") from None
    return v


ZoneName = Annotated[str, AfterValidator(_known_zone)]  # an IANA time zone the zoneinfo database knows


class ScheduleSettings(BaseModel):
    """Cron-style jobs run by the workers, each once cluster-wide (docs/scheduler.md)."""

    timezone: ZoneName = Field("UTC", description="time zone the cron expressions are read in")
    jobs: dict[str, JobSettings] = Field(
        default_factory=lambda: {n: JobSettings(cron=c) for n, c in DEFAULT_JOBS.items()},
        description="per job name: {cron, enabled}; jobs left out keep their defaults",
    )

    @field_validator("jobs", mode="before")
    @classmethod
    def _known_jobs_with_defaults(cls, v: Any) -> Any:
        """A table names only the jobs it changes (`enabled = false` alone keeps the default cron)."""
        if not isinstance(v, dict):
            return v
        unknown = sorted(set(v) - set(DEFAULT_JOBS))
        if unknown:
            raise ValueError(f"unknown job {', '.join(map(repr, unknown))}; jobs are {', '.join(DEFAULT_JOBS)}")
        merged: dict[str, Any] = {}
        for name, cron in DEFAULT_JOBS.items():
            given = v.get(name, {})
            given = given.model_dump() if isinstance(given, JobSettings) else dict(given)
            merged[name] = {"cron": cron, **given}
        return merged


class RetentionSettings(BaseModel):
    """How long finished rows are kept before the `retention` job deletes them."""

    outbox_days: int = Field(30, ge=1, description="sent, delivered, cancelled and digested messages kept this long")
    inbox_days: int = Field(90, ge=1, description="applied and ignored inbound events kept this long")


def _config_file() -> Path:
    return Path(os.environ.get("BACKORDER_CONFIG", "backorder.toml"))


class ReorderOverride(BaseModel):
    """Fixed levels of one SKU; a key left out is computed from demand (or master data)."""

    model_config = ConfigDict(extra="forbid")
    reorder_point: int | None = Field(None, ge=0, description="projected units below which to reorder")
    reorder_qty: int | None = Field(None, ge=1, description="units to suggest (more when the shortfall is larger)")
    supplier: str | None = Field(None, min_length=1, description="supplier id to buy from instead of the product's")


class ReorderSettings(BaseModel):
    """Reorder suggestions and transfers (docs/reorder.md)."""

    enabled: bool = Field(True, description="the reorder_check job opens suggestions")
    demand_window_days: int = Field(28, ge=1, le=365, description="days of orders the daily demand is taken from")
    safety_days: int = Field(7, ge=0, le=365, description="days of demand kept beyond the lead time")
    default_lead_time_days: int = Field(14, ge=0, le=365, description="lead time of a SKU whose supplier has none")
    transfer_days: int = Field(2, ge=0, le=60, description="days a transfer between warehouses takes")
    transfer_first: bool = Field(True, description="suggest a transfer from a warehouse with surplus before buying")
    rejected_quiet_days: int = Field(7, ge=0, le=365, description="a rejected suggestion is not made again for this")
    overrides: dict[str, ReorderOverride] = Field(default_factory=dict, description="per SKU: fixed levels")

    @field_validator("overrides")
    @classmethod
    def _skus(cls, overrides: dict[str, ReorderOverride]) -> dict[str, ReorderOverride]:
        for sku in overrides:
            if not sku.strip():
                raise ValueError("overrides: a SKU key is empty")
        return overrides


class ReportSettings(BaseModel):
    """The weekly backorder report (services/weekly_report.py, docs/reports.md)."""

    enabled: bool = Field(True, description="build and deliver the weekly report from the scheduler's job")
    timezone: ZoneName = Field("UTC", description="time zone whose Monday 00:00 starts a report week")
    weeks: int = Field(8, ge=1, le=52, description="weeks in the opened-vs-resolved trend")
    top: int = Field(10, ge=1, le=100, description="rows in each top list (SKUs, suppliers, customers)")
    roles: list[str] = Field(default_factory=list, description="staff roles whose [staff] contact receives it")
    slack_channel: str | None = Field(None, description="a Slack channel id that receives it")
    teams_conversation: str | None = Field(None, description="a Teams conversation id that receives it")
    emails: list[str] = Field(default_factory=list, description="e-mail addresses that receive it")
    attach: list[str] = Field(default_factory=lambda: ["pdf"], description="formats attached to the e-mail")

    @field_validator("attach")
    @classmethod
    def _known_formats(cls, v: list[str]) -> list[str]:
        bad = [f for f in v if f not in ("md", "html", "csv", "pdf")]
        if bad:
            raise ValueError(f"unknown format {bad[0]!r}; one of md, html, csv, pdf")
        return v

    @field_validator("roles")
    @classmethod
    def _known_roles(cls, v: list[str]) -> list[str]:
        bad = [r for r in v if r not in StaffSettings.model_fields or r in ("members", "unlinked_read")]
        if bad:
            raise ValueError(f"unknown staff role {bad[0]!r}; a contact of [staff]")
        return v


API_SCOPES = ("read", "write", "admin")


class ApiTokenSettings(BaseModel):
    """One entry of `api_tokens` (docs/api-tokens.md): a named bearer token and what it may do."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)
    # no dot in a name: it is one part of a session cookie
    name: str = Field(min_length=1, max_length=60, pattern=r"^[A-Za-z0-9_-]+$",
                      description="who holds it: shown in 403 answers, never the secret")
    token: SecretStr = Field(description="the bearer secret (from the environment or a file outside the repository)")
    scopes: list[str] = Field(min_length=1, description="any of read, write, admin")

    @field_validator("token")
    @classmethod
    def _not_blank(cls, v: SecretStr) -> SecretStr:
        secret = v.get_secret_value()
        if not secret.strip() or secret != secret.strip():
            raise ValueError("token is empty or has spaces around it")
        return v

    @field_validator("scopes")
    @classmethod
    def _known_scopes(cls, v: list[str]) -> list[str]:
        bad = [s for s in v if s not in API_SCOPES]
        if bad:
            raise ValueError(f"unknown scope {bad[0]!r}; one of read, write, admin")
        return sorted(set(v), key=API_SCOPES.index)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="BACKORDER_", env_nested_delimiter="__", extra="ignore", case_sensitive=False,
        hide_input_in_errors=True,  # an error must not echo a secret (api_tokens, passwords) into a log
    )

    database_url: str = Field(DEFAULT_DATABASE_URL, description="SQLAlchemy URL of the store")
    # repr=False: a plain str (compared as given), so keep it out of repr(settings) and any log of it
    api_token: str | None = Field(None, repr=False, description="when set, every endpoint but /healthz needs it")
    api_tokens: list[ApiTokenSettings] = Field(
        default_factory=list, description="named bearer tokens with scopes (docs/api-tokens.md)")
    allocation: AllocationSettings = Field(default_factory=AllocationSettings)
    severity: SeveritySettings = Field(default_factory=SeveritySettings)
    notify: NotifySettings = Field(default_factory=NotifySettings)
    email: EmailSettings = Field(default_factory=EmailSettings)
    webhook: WebhookSettings = Field(default_factory=WebhookSettings)
    staff: StaffSettings = Field(default_factory=StaffSettings)
    llm: LLMSettings = Field(default_factory=LLMSettings)
    drafts: DraftSettings = Field(default_factory=DraftSettings)
    substitutes: SubstituteSettings = Field(default_factory=SubstituteSettings)
    slack: SlackSettings = Field(default_factory=SlackSettings)
    teams: TeamsSettings = Field(default_factory=TeamsSettings)
    twilio: TwilioSettings = Field(default_factory=TwilioSettings)
    links: LinkSettings = Field(default_factory=LinkSettings)
    reorder: ReorderSettings = Field(default_factory=ReorderSettings)
    schedule: ScheduleSettings = Field(default_factory=ScheduleSettings)
    retention: RetentionSettings = Field(default_factory=RetentionSettings)
    health: HealthSettings = Field(default_factory=HealthSettings)
    intake: IntakeSettings = Field(default_factory=IntakeSettings)
    logging: LoggingSettings = Field(default_factory=LoggingSettings)
    tasks: TaskSettings = Field(default_factory=TaskSettings)
    dashboard: DashboardSettings = Field(default_factory=DashboardSettings)
    report: ReportSettings = Field(default_factory=ReportSettings)
    limits: LimitSettings = Field(default_factory=LimitSettings)

    @field_validator("database_url")
    @classmethod
    def _known_scheme(cls, url: str) -> str:
        if not url.startswith(("sqlite", "postgresql")):
            raise ValueError("database_url must be a sqlite:/// or postgresql+psycopg:// URL")
        if url.startswith("postgresql://") or url.startswith("postgres://"):
            # psycopg 3 is the driver we ship; a bare postgresql:// URL would ask for psycopg2.
            url = "postgresql+psycopg://" + url.split("://", 1)[1]
        return url

    @model_validator(mode="after")
    def _distinct_tokens(self) -> Settings:
        """Two tokens with one secret could not be told apart, and a name picks a token's sessions."""
        names: set[str] = {"api_token"}  # the name under which the legacy token signs sessions
        secrets_seen: set[str] = {self.api_token} if self.api_token else set()
        for i, entry in enumerate(self.api_tokens):
            if entry.name in names:
                raise ValueError(f"api_tokens[{i}].name: {entry.name!r} is used twice (or is the reserved api_token)")
            if entry.token.get_secret_value() in secrets_seen:
                raise ValueError(f"api_tokens[{i}].token ({entry.name}): the same secret as another token")
            names.add(entry.name)
            secrets_seen.add(entry.token.get_secret_value())
        return self

    @model_validator(mode="after")
    def _team_channel(self) -> Settings:
        """[slack] channel is where team alerts go: it becomes the `team` role's first channel unless that role
        names a Slack channel of its own."""
        team = self.staff.team
        if self.slack.channel and team.slack_channel is None:
            team.slack_channel = self.slack.channel
            if "slack" not in team.channels:
                team.channels = ["slack", *team.channels]
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls, toml_file=_config_file()))

    def allocation_policy(self, warehouse_regions: dict[str, str] | None = None) -> AllocationPolicy:
        a, s = self.allocation, self.severity
        return AllocationPolicy(
            name=a.policy,
            priority_key=tuple(a.priority_key),
            warehouse_order=tuple(a.warehouse_order),
            warehouse_regions=dict(warehouse_regions or {}),
            allow_split=a.allow_split,
            receiving_buffer_days=a.receiving_buffer_days,
            severity=SeverityThresholds(
                medium_days=s.medium_days,
                high_days=s.high_days,
                critical_days=s.critical_days,
                high_value=s.high_value,
                critical_value=s.critical_value,
            ),
        )


def load_settings(**overrides: Any) -> Settings:
    """Read the settings now (tests and the CLI call this; nothing is cached)."""
    settings = Settings(**overrides)
    settings.allocation_policy()  # fail at start, naming the key, not at the first order
    return settings


