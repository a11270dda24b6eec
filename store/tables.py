"""Core Table objects of the models, for set-based statements on the hot paths."""

from __future__ import annotations

from store import models as m

warehouses = m.Warehouse.__table__
suppliers = m.Supplier.__table__
products = m.Product.__table__
customers = m.Customer.__table__
stock = m.Stock.__table__
orders = m.Order.__table__
order_lines = m.OrderLine.__table__
allocations = m.Allocation.__table__
purchase_orders = m.PurchaseOrder.__table__
po_lines = m.POLine.__table__
tasks = m.Task.__table__
incidents = m.Incident.__table__
inbox = m.InboxEvent.__table__
dead_letters = m.DeadLetter.__table__
audit_log = m.AuditEntry.__table__
domain_events = m.DomainEventRow.__table__
outbox = m.OutboxMessage.__table__
subscriptions = m.Subscription.__table__
rate_slots = m.RateSlot.__table__
conversations = m.Conversation.__table__
staff_members = m.StaffMemberRow.__table__
inbound_messages = m.InboundMessage.__table__
suppressions = m.Suppression.__table__
channel_refs = m.ChannelRef.__table__
chat_threads = m.ChatThread.__table__
drafts = m.Draft.__table__
substitution_offers = m.SubstitutionOffer.__table__
job_runs = m.JobRun.__table__
worker_heartbeats = m.WorkerHeartbeat.__table__
reports = m.Report.__table__
