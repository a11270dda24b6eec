"""The notification engine: domain events -> rules -> recipients -> messages -> policy -> outbox -> senders.

Everything here but `dispatch` and `senders` is plain Python over plain data; the database glue
lives in services/notifications.py (planning, inside the state change's transaction) and
store/outbox.py (claims and results).
"""
