"""The schema, as SQLAlchemy 2.x typed models. Alembic migrations create it; nothing calls create_all."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

Id = String(100)
# BigInteger keys autoincrement on PostgreSQL; SQLite only autoincrements INTEGER PRIMARY KEY.
BigId = BigInteger().with_variant(Integer, "sqlite")
Money = Numeric(14, 2)


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware datetime stored as UTC on every dialect.

    SQLite keeps no offset: without this, 10:00+02:00 would come back as 10:00 and compare
    after 09:00Z (stale-count checks, FIFO by placed_at). Aware values are converted to UTC
    on the way in; naive ones read back from SQLite are UTC.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is not None:
            value = value.astimezone(UTC)
        return value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value


TZDateTime = UTCDateTime()

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


class Warehouse(Base):
    __tablename__ = "warehouses"
    warehouse_id: Mapped[str] = mapped_column(Id, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    region: Mapped[str | None] = mapped_column(String(100))
    updated_at: Mapped[datetime | None] = mapped_column(TZDateTime)


class Supplier(Base):
    __tablename__ = "suppliers"
    supplier_id: Mapped[str] = mapped_column(Id, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    lead_time_days: Mapped[int | None] = mapped_column(Integer)
    email: Mapped[str | None] = mapped_column(String(320))
    updated_at: Mapped[datetime | None] = mapped_column(TZDateTime)


class Product(Base):
    __tablename__ = "products"
    sku: Mapped[str] = mapped_column(Id, primary_key=True)
    name: Mapped[str] = mapped_column(String(300))
    price: Mapped[Decimal] = mapped_column(Money, default=Decimal(0))
    # A soft reference: a product may name a supplier we have not heard of yet.
    supplier_id: Mapped[str | None] = mapped_column(Id, index=True)
    lead_time_days: Mapped[int | None] = mapped_column(Integer)
    reorder_point: Mapped[int] = mapped_column(Integer, default=0)
    substitutes: Mapped[list[Any]] = mapped_column(default=list)
    category: Mapped[str | None] = mapped_column(String(200))
    extra: Mapped[dict[str, Any]] = mapped_column(default=dict)
    updated_at: Mapped[datetime | None] = mapped_column(TZDateTime)


class Customer(Base):
    __tablename__ = "customers"
    customer_id: Mapped[str] = mapped_column(Id, primary_key=True)
    name: Mapped[str] = mapped_column(String(300))
    tier: Mapped[str] = mapped_column(String(20), default="standard")
    region: Mapped[str | None] = mapped_column(String(100))
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    locale: Mapped[str] = mapped_column(String(16), default="en")
    contacts: Mapped[dict[str, Any]] = mapped_column(default=dict)
    preferences: Mapped[dict[str, Any]] = mapped_column(default=dict)
    tags: Mapped[list[Any]] = mapped_column(default=list, server_default="[]")
    updated_at: Mapped[datetime | None] = mapped_column(TZDateTime)


class Stock(Base):
    __tablename__ = "stock"
    sku: Mapped[str] = mapped_column(ForeignKey("products.sku"), primary_key=True)
    warehouse_id: Mapped[str] = mapped_column(ForeignKey("warehouses.warehouse_id"), primary_key=True)
    on_hand: Mapped[int] = mapped_column(Integer, default=0)
    allocated: Mapped[int] = mapped_column(Integer, default=0)
    # occurred_at of the last applied absolute count: an older inventory.adjusted is ignored.
    counted_at: Mapped[datetime | None] = mapped_column(TZDateTime)


class Order(Base):
    __tablename__ = "orders"
    order_id: Mapped[str] = mapped_column(Id, primary_key=True)
    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.customer_id"), index=True)
    placed_at: Mapped[datetime] = mapped_column(TZDateTime)
    promised_date: Mapped[date | None] = mapped_column(Date)
    rush: Mapped[bool] = mapped_column(Boolean, default=False)
    ship_complete: Mapped[bool] = mapped_column(Boolean, default=False)
    channel: Mapped[str | None] = mapped_column(String(50))
    source: Mapped[str] = mapped_column(String(100), default="api")
    status: Mapped[str] = mapped_column(String(20), default="open")


class OrderLine(Base):
    __tablename__ = "order_lines"
    __table_args__ = (
        UniqueConstraint("order_id", "line_id"),
        # The hot query of allocation: the open lines of some SKUs.
        Index("ix_order_lines_sku_open", "sku", "status"),
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    order_id: Mapped[str] = mapped_column(ForeignKey("orders.order_id"))
    line_id: Mapped[str] = mapped_column(Id)
    sku: Mapped[str] = mapped_column(ForeignKey("products.sku"))
    qty: Mapped[int] = mapped_column(Integer)
    unit_price: Mapped[Decimal] = mapped_column(Money, default=Decimal(0))
    qty_allocated: Mapped[int] = mapped_column(Integer, default=0)
    qty_shipped: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(24))
    eta: Mapped[date | None] = mapped_column(Date)
    eta_reason: Mapped[str | None] = mapped_column(String(100))
    backordered_at: Mapped[datetime | None] = mapped_column(TZDateTime)
    last_checked: Mapped[datetime | None] = mapped_column(TZDateTime)
    severity: Mapped[str | None] = mapped_column(String(16))


class Allocation(Base):
    """Units of one line held in one warehouse; status allocated -> shipped, or released."""

    __tablename__ = "allocations"
    __table_args__ = (Index("ix_allocations_line", "line_pk", "status"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    line_pk: Mapped[int] = mapped_column(ForeignKey("order_lines.id"))
    sku: Mapped[str] = mapped_column(Id)
    warehouse_id: Mapped[str] = mapped_column(Id)
    qty: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default="allocated")
    created_at: Mapped[datetime] = mapped_column(TZDateTime)
    updated_at: Mapped[datetime | None] = mapped_column(TZDateTime)


class PurchaseOrder(Base):
    __tablename__ = "purchase_orders"
    po_id: Mapped[str] = mapped_column(Id, primary_key=True)
    supplier_id: Mapped[str] = mapped_column(Id, index=True)
    warehouse_id: Mapped[str] = mapped_column(Id)
    expected_at: Mapped[date | None] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(16), default="open")
    updated_at: Mapped[datetime | None] = mapped_column(TZDateTime)


class POLine(Base):
    __tablename__ = "po_lines"
    __table_args__ = (UniqueConstraint("po_id", "sku"), Index("ix_po_lines_sku", "sku"))
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    po_id: Mapped[str] = mapped_column(ForeignKey("purchase_orders.po_id"))
    sku: Mapped[str] = mapped_column(Id)
    qty: Mapped[int] = mapped_column(Integer)
    received: Mapped[int] = mapped_column(Integer, default=0)


class Task(Base):
    __tablename__ = "tasks"
    __table_args__ = (
        # One open task per kind and SKU, whatever the race.
        Index(
            "uq_tasks_open_kind_sku",
            "kind",
            "sku",
            unique=True,
            sqlite_where=text("status = 'open'"),
            postgresql_where=text("status = 'open'"),
        ),
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(40))
    sku: Mapped[str | None] = mapped_column(Id)
    po_id: Mapped[str | None] = mapped_column(Id)
    title: Mapped[str] = mapped_column(String(300))
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)
    severity: Mapped[str | None] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default="open")
    created_at: Mapped[datetime] = mapped_column(TZDateTime)
    closed_at: Mapped[datetime | None] = mapped_column(TZDateTime)
    # Owners and deadlines: the role that works the task, the staff member who took it (an open task
    # with an owner is "taken"), the due time from the kind's SLA, when it was escalated to the role's lead.
    owner_role: Mapped[str | None] = mapped_column(String(40))
    owner: Mapped[str | None] = mapped_column(String(100))
    taken_at: Mapped[datetime | None] = mapped_column(TZDateTime)
    due_at: Mapped[datetime | None] = mapped_column(TZDateTime, index=True)
    escalated_at: Mapped[datetime | None] = mapped_column(TZDateTime)
    closed_by: Mapped[str | None] = mapped_column(String(100))
    outcome: Mapped[str | None] = mapped_column(String(16))  # done, approved, rejected, cancelled


class Incident(Base):
    __tablename__ = "incidents"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(40))
    sku: Mapped[str | None] = mapped_column(Id, index=True)
    severity: Mapped[str] = mapped_column(String(16))
    cause: Mapped[str] = mapped_column(Text)
    mitigation: Mapped[str] = mapped_column(Text)
    value: Mapped[Decimal] = mapped_column(Money, default=Decimal(0))
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(String(16), default="open")
    opened_at: Mapped[datetime] = mapped_column(TZDateTime)


class InboxEvent(Base):
    """Every accepted event, stored before it is applied; (source, event_id) is its idempotency key."""

    __tablename__ = "inbox"
    __table_args__ = (UniqueConstraint("source", "event_id"), Index("ix_inbox_pending", "status", "id"))
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    source: Mapped[str] = mapped_column(String(100))
    event_id: Mapped[str] = mapped_column(String(200))
    type: Mapped[str] = mapped_column(String(40))
    occurred_at: Mapped[datetime] = mapped_column(TZDateTime)
    received_at: Mapped[datetime] = mapped_column(TZDateTime)
    payload: Mapped[dict[str, Any]] = mapped_column()
    # pending -> applied | ignored (stale) | parked (dead letter)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    applied_at: Mapped[datetime | None] = mapped_column(TZDateTime)
    note: Mapped[str | None] = mapped_column(Text)


class DeadLetter(Base):
    __tablename__ = "dead_letters"
    __table_args__ = (Index("ix_dead_letters_missing", "status", "missing_kind", "missing_key"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    inbox_id: Mapped[int] = mapped_column(ForeignKey("inbox.id"), unique=True)
    reason: Mapped[str] = mapped_column(Text)
    missing_kind: Mapped[str | None] = mapped_column(String(40))
    missing_key: Mapped[str | None] = mapped_column(Id)
    impact_value: Mapped[Decimal] = mapped_column(Money, default=Decimal(0))
    status: Mapped[str] = mapped_column(String(16), default="parked")  # parked | resolved | dropped
    attempts: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(TZDateTime)
    updated_at: Mapped[datetime | None] = mapped_column(TZDateTime)


class AuditEntry(Base):
    """Append-only: who decided what, why, and the state before and after."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_entity", "entity", "entity_id"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(TZDateTime)
    actor: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(60))
    entity: Mapped[str] = mapped_column(String(40))
    entity_id: Mapped[str] = mapped_column(String(220))
    reason: Mapped[str | None] = mapped_column(Text)
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class DomainEventRow(Base):
    """Decisions for the notifiers, written in the transaction that made them (the outbox's source)."""

    __tablename__ = "domain_events"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    type: Mapped[str] = mapped_column(String(40), index=True)
    data: Mapped[dict[str, Any]] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(TZDateTime)
    cause: Mapped[str | None] = mapped_column(String(300))


class OutboxMessage(Base):
    """One message to one recipient on one channel, written with the state change that caused it.

    status: held (waits for a digest) | pending -> sending -> sent -> delivered, or failed (will
    retry at due_at) -> dead; cancelled when it no longer applies. `due_at` is when the row is
    next claimable: send time for pending/failed rows, lease expiry for sending ones, so one
    index serves every claim.
    """

    __tablename__ = "outbox"
    __table_args__ = (
        Index("ix_outbox_due", "due_at", postgresql_where=text("status IN ('pending', 'failed', 'sending')"),
              sqlite_where=text("status IN ('pending', 'failed', 'sending')")),
        Index("ix_outbox_order", "order_id"),
        Index("ix_outbox_customer", "customer_id", "created_at"),
        Index("ix_outbox_status", "status"),
        Index("ix_outbox_provider", "provider_id"),  # delivery status callbacks name the provider's id
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    idempotency_key: Mapped[str] = mapped_column(String(500), unique=True)
    kind: Mapped[str] = mapped_column(String(40))
    channel: Mapped[str] = mapped_column(String(20))
    recipient: Mapped[str] = mapped_column(String(500))
    audience: Mapped[str] = mapped_column(String(16))  # customer | staff | system
    customer_id: Mapped[str | None] = mapped_column(Id)
    order_id: Mapped[str | None] = mapped_column(Id)
    sku: Mapped[str | None] = mapped_column(Id)
    role: Mapped[str | None] = mapped_column(String(40))
    line_ids: Mapped[list[Any]] = mapped_column(default=list)
    locale: Mapped[str] = mapped_column(String(16), default="en")
    subject: Mapped[str | None] = mapped_column(Text)
    body: Mapped[str] = mapped_column(Text, default="")
    html: Mapped[str | None] = mapped_column(Text)
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    facts: Mapped[dict[str, Any]] = mapped_column(default=dict)
    fallback: Mapped[list[Any]] = mapped_column(default=list)
    urgent: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(16))
    due_at: Mapped[datetime | None] = mapped_column(TZDateTime)
    expires_at: Mapped[datetime | None] = mapped_column(TZDateTime)
    lease_owner: Mapped[str | None] = mapped_column(String(80))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    error_reason: Mapped[str | None] = mapped_column(String(60))
    provider_id: Mapped[str | None] = mapped_column(String(300))
    cause: Mapped[str | None] = mapped_column(String(300))
    occurred_at: Mapped[datetime | None] = mapped_column(TZDateTime)
    created_at: Mapped[datetime] = mapped_column(TZDateTime)
    updated_at: Mapped[datetime | None] = mapped_column(TZDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(TZDateTime)
    delivered_at: Mapped[datetime | None] = mapped_column(TZDateTime)


class Subscription(Base):
    """A customer waiting to hear that a SKU is back in stock; notified once, then closed."""

    __tablename__ = "subscriptions"
    __table_args__ = (
        Index("uq_subscriptions_open", "customer_id", "sku", unique=True,
              sqlite_where=text("status = 'open'"), postgresql_where=text("status = 'open'")),
        Index("ix_subscriptions_sku", "sku", "status"),
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.customer_id"))
    sku: Mapped[str] = mapped_column(ForeignKey("products.sku"))
    channel: Mapped[str | None] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(16), default="open")  # open | notified | cancelled
    created_at: Mapped[datetime] = mapped_column(TZDateTime)
    notified_at: Mapped[datetime | None] = mapped_column(TZDateTime)


class RateSlot(Base):
    """The next free send time per rate-limited key, shared by every worker (a cluster-wide token bucket)."""

    __tablename__ = "rate_slots"
    key: Mapped[str] = mapped_column(String(600), primary_key=True)
    next_free_at: Mapped[datetime] = mapped_column(TZDateTime)


class Conversation(Base):
    """Chat state per asker (channel and user), so a follow-up can lean on the last turn; it expires."""

    __tablename__ = "conversations"
    key: Mapped[str] = mapped_column(String(300), primary_key=True)
    state: Mapped[dict[str, Any]] = mapped_column(default=dict)
    updated_at: Mapped[datetime] = mapped_column(TZDateTime)


class StaffMemberRow(Base):
    """A person of the team linked to their chat accounts (`backorder staff add`); roles gate actions."""

    __tablename__ = "staff_members"
    staff_id: Mapped[str] = mapped_column(Id, primary_key=True)
    name: Mapped[str | None] = mapped_column(String(200))
    roles: Mapped[list[Any]] = mapped_column(default=list)
    slack_user: Mapped[str | None] = mapped_column(String(40), unique=True)
    teams_user: Mapped[str | None] = mapped_column(String(200), unique=True)
    phone: Mapped[str | None] = mapped_column(String(20), unique=True)
    email: Mapped[str | None] = mapped_column(String(320))
    warehouse_id: Mapped[str | None] = mapped_column(Id)  # whose backorders their App Home shows first
    updated_at: Mapped[datetime] = mapped_column(TZDateTime)


class InboundMessage(Base):
    """Every message a chat channel delivered to us, once: providers retry, we answer once.

    It also tells when a sender last wrote to us (WhatsApp's 24-hour window).
    """

    __tablename__ = "inbound_messages"
    __table_args__ = (UniqueConstraint("channel", "message_id"),
                      Index("ix_inbound_sender", "channel", "sender", "received_at"))
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    channel: Mapped[str] = mapped_column(String(20))
    message_id: Mapped[str] = mapped_column(String(200))
    sender: Mapped[str] = mapped_column(String(300))
    received_at: Mapped[datetime] = mapped_column(TZDateTime)


class Suppression(Base):
    """An address that asked for no more messages on a channel (STOP); checked before every send."""

    __tablename__ = "suppressions"
    channel: Mapped[str] = mapped_column(String(20), primary_key=True)
    address: Mapped[str] = mapped_column(String(300), primary_key=True)
    reason: Mapped[str] = mapped_column(String(60))
    created_at: Mapped[datetime] = mapped_column(TZDateTime)


class ChannelRef(Base):
    """How to reach someone on a channel later, proactively (a Teams conversation reference)."""

    __tablename__ = "channel_refs"
    channel: Mapped[str] = mapped_column(String(20), primary_key=True)
    key: Mapped[str] = mapped_column(String(300), primary_key=True)
    reference: Mapped[dict[str, Any]] = mapped_column()
    updated_at: Mapped[datetime] = mapped_column(TZDateTime)


class ChatThread(Base):
    """The first message about a topic (an order, a SKU, a task) in a chat, so follow-ups thread under it."""

    __tablename__ = "chat_threads"
    channel: Mapped[str] = mapped_column(String(20), primary_key=True)
    destination: Mapped[str] = mapped_column(String(300), primary_key=True)
    topic: Mapped[str] = mapped_column(String(300), primary_key=True)
    thread_id: Mapped[str] = mapped_column(String(300))
    updated_at: Mapped[datetime] = mapped_column(TZDateTime)


class Draft(Base):
    """A customer message written for a person to approve: by the LLM, or from a template when none is set.

    status: drafting (the LLM is still to write it) -> pending (waits for an approver) -> approved
    (its outbox rows are written in the same transaction; reads show it as sent once they are) | rejected
    | expired | cancelled (what it was about moved on: the line was allocated, the order cancelled).
    """

    __tablename__ = "drafts"
    __table_args__ = (Index("ix_drafts_status", "status", "created_at"), Index("ix_drafts_order", "order_id"))
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    idempotency_key: Mapped[str] = mapped_column(String(500), unique=True)
    kind: Mapped[str] = mapped_column(String(40))  # delay_notice | substitution_offer | partial_shipment_offer | ...
    notice_kind: Mapped[str] = mapped_column(String(40))  # the outbox kind the approved text goes out as
    mode: Mapped[str] = mapped_column(String(16))  # approve | auto (the policy that made it)
    customer_id: Mapped[str | None] = mapped_column(Id, index=True)
    order_id: Mapped[str | None] = mapped_column(Id)
    sku: Mapped[str | None] = mapped_column(Id)
    line_ids: Mapped[list[Any]] = mapped_column(default=list)
    offer_id: Mapped[int | None] = mapped_column(BigInteger().with_variant(Integer, "sqlite"))
    locale: Mapped[str] = mapped_column(String(16), default="en")
    channel: Mapped[str] = mapped_column(String(20))  # the customer's first channel, which the text is written for
    text: Mapped[str] = mapped_column(Text, default="")
    template_text: Mapped[str] = mapped_column(Text, default="")
    facts: Mapped[dict[str, Any]] = mapped_column(default=dict)  # exactly what the model was given
    facts_used: Mapped[list[Any]] = mapped_column(default=list)
    source: Mapped[str] = mapped_column(String(16), default="template")  # llm | template
    model: Mapped[str | None] = mapped_column(String(100))
    prompt_version: Mapped[str | None] = mapped_column(String(40))
    grounding: Mapped[dict[str, Any]] = mapped_column(default=dict)  # attempts, problems, fallback reason
    question: Mapped[str | None] = mapped_column(Text)  # the customer's own words (question replies): untrusted
    status: Mapped[str] = mapped_column(String(16))
    cause: Mapped[str | None] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(TZDateTime)
    updated_at: Mapped[datetime] = mapped_column(TZDateTime)
    expires_at: Mapped[datetime] = mapped_column(TZDateTime)
    escalate_at: Mapped[datetime | None] = mapped_column(TZDateTime)
    escalated_at: Mapped[datetime | None] = mapped_column(TZDateTime)
    decided_by: Mapped[str | None] = mapped_column(String(100))
    decided_at: Mapped[datetime | None] = mapped_column(TZDateTime)
    decided_via: Mapped[str | None] = mapped_column(String(20))  # slack | teams | web | api | policy | expiry
    edited: Mapped[bool] = mapped_column(Boolean, default=False)


class SubstitutionOffer(Base):
    """A substitute offered for the waiting part of one line; accepted, declined (never offered again), or not."""

    __tablename__ = "substitution_offers"
    __table_args__ = (
        UniqueConstraint("line_pk", "substitute_sku"),
        Index("ix_substitution_offers_customer", "customer_id", "sku", "substitute_sku"),
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    line_pk: Mapped[int] = mapped_column(ForeignKey("order_lines.id"))
    order_id: Mapped[str] = mapped_column(Id)
    line_id: Mapped[str] = mapped_column(Id)
    customer_id: Mapped[str] = mapped_column(Id)
    sku: Mapped[str] = mapped_column(Id)
    substitute_sku: Mapped[str] = mapped_column(Id)
    qty: Mapped[int] = mapped_column(Integer)
    # offered (waits for the customer) -> accepted | declined | withdrawn (the line stopped waiting) | expired
    status: Mapped[str] = mapped_column(String(16), default="offered")
    reasons: Mapped[list[Any]] = mapped_column(default=list)
    created_at: Mapped[datetime] = mapped_column(TZDateTime)
    decided_at: Mapped[datetime | None] = mapped_column(TZDateTime)
    new_line_pk: Mapped[int | None] = mapped_column(BigInteger().with_variant(Integer, "sqlite"))


class JobRun(Base):
    """One row per scheduled job: the last slot run, so a restarted worker catches up a missed run once."""

    __tablename__ = "job_runs"
    job: Mapped[str] = mapped_column(String(60), primary_key=True)
    last_slot: Mapped[datetime | None] = mapped_column(TZDateTime)
    started_at: Mapped[datetime | None] = mapped_column(TZDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(TZDateTime)
    status: Mapped[str | None] = mapped_column(String(16))  # running, ok, failed
    error: Mapped[str | None] = mapped_column(Text)
    runs: Mapped[int] = mapped_column(Integer, default=0)
    owner: Mapped[str | None] = mapped_column(String(200))


class WorkerHeartbeat(Base):
    """Each running worker's last sign of life, for /readyz and the dashboard."""

    __tablename__ = "worker_heartbeats"
    worker_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    role: Mapped[str] = mapped_column(String(40))
    host: Mapped[str] = mapped_column(String(200))
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(TZDateTime)
    beat_at: Mapped[datetime] = mapped_column(TZDateTime, index=True)


class Report(Base):
    """A generated report (the weekly backorder report): its period and figures, delivered once per period."""

    __tablename__ = "reports"
    __table_args__ = (UniqueConstraint("kind", "period_start"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(40))
    period_start: Mapped[datetime] = mapped_column(TZDateTime)
    period_end: Mapped[datetime] = mapped_column(TZDateTime)
    figures: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(TZDateTime)
    delivered_at: Mapped[datetime | None] = mapped_column(TZDateTime)
