"""[health] and [logging] validation, the text log format and request id sanitising (no store)."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
from pydantic import ValidationError

from backorder.config import HealthSettings, LoggingSettings
from backorder.logs import configure
from services import log_context


@pytest.fixture
def restore_root() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_health_and_logging_settings_name_the_bad_field() -> None:
    with pytest.raises(ValidationError, match=r"stale_seconds must be longer than health\.heartbeat_seconds"):
        HealthSettings(heartbeat_seconds=30, stale_seconds=30)
    with pytest.raises(ValidationError, match="heartbeat_seconds"):
        HealthSettings(heartbeat_seconds=0)
    with pytest.raises(ValidationError, match=r"logging\.format must be json or text, not 'xml'"):
        LoggingSettings(format="xml")
    with pytest.raises(ValidationError, match=r"logging\.level must be DEBUG, INFO"):
        LoggingSettings(level="loud")
    ok = LoggingSettings(format="JSON", level="debug")
    assert (ok.format, ok.level) == ("json", "DEBUG")
    assert (HealthSettings().heartbeat_seconds, HealthSettings().stale_seconds) == (10.0, 60.0)


def test_text_lines_show_the_ids_only_when_set(restore_root: None) -> None:
    stream = io.StringIO()
    configure(LoggingSettings(format="text", level="INFO"), stream)
    log = logging.getLogger("backorder.test")
    log.info("outside")
    token = log_context.request_id_var.set("req-1")
    event = log_context.set_event("erp:7")
    try:
        log.warning("inside")
        log.debug("below the level")
    finally:
        log_context.reset_event(event)
        log_context.request_id_var.reset(token)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    assert lines[0].endswith("INFO    backorder.test: outside")
    assert lines[1].endswith("WARNING backorder.test: inside [request_id=req-1 event_id=erp:7]")


def test_configuring_again_replaces_the_handler_and_unset_format_is_json_off_a_terminal(restore_root: None) -> None:
    first, second = io.StringIO(), io.StringIO()
    configure(LoggingSettings(format="text"), first)
    configure(LoggingSettings(), second)  # a StringIO is no terminal: JSON
    logging.getLogger("backorder.test").error("once", extra={"sku": "KTL-200"})
    assert first.getvalue() == ""
    record = json.loads(second.getvalue())
    assert {k: record[k] for k in ("level", "logger", "message", "sku")} == {
        "level": "ERROR", "logger": "backorder.test", "message": "once", "sku": "KTL-200"}
    assert "request_id" not in record and "event_id" not in record


@pytest.mark.parametrize(("header", "kept"), [
    ("abc-123", True), ("ok.1:2/3+4=", True), ("x" * 128, True), ("x" * 129, False), ("", False),
    (None, False), ("a b", False), ("-leading", False), ("é", False), ("a\r\nSet-Cookie: x", False),
])
def test_request_ids_are_kept_only_when_sane(header: str | None, kept: bool) -> None:
    rid = log_context.request_id_from(header)
    assert (rid == header) is kept
    if not kept:
        assert len(rid) == 32 and int(rid, 16) >= 0
