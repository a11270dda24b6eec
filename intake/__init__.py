"""Source payloads (canonical JSON, CSV, ...) -> validated canonical events.

Public entry points: intake.events (models, parse_events, event_json_schema),
intake.csv_import (read_csv) and intake.errors (EventValidationError).
"""
