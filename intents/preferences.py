"""What a preference message asks to change, in the public preferences shape (docs/notifications.md)."""

from __future__ import annotations

import re
from typing import Any

from intents.entities import fold

NIGHT = {"start": "21:00", "end": "08:00"}
DIGEST = re.compile(r"\b(digest|summary|resumen|once a day|una vez al dia|daily|diario|weekly|semanal)\b")
INSTANT = re.compile(r"\b(instant\w*|right away|immediately|every (update|change)|al momento|de inmediato|"
                     r"en el momento)\b")
AFTER = re.compile(r"\b(?:after|despues de las|a partir de las|not after)\s+(\d{1,2})(?::(\d\d))?\s*(am|pm|h)?\b")
WINDOW = re.compile(r"\b(?:from|between|de|entre)\s+(\d{1,2})(?::\d\d)?\s*(am|pm|h)?\s*(?:to|and|a|y)\s+"
                    r"(\d{1,2})(?::\d\d)?\s*(am|pm|h)?\b")
AT_NIGHT = re.compile(r"\b(at night|de noche|por la noche|night time|overnight)\b")


def _hour(value: str, suffix: str | None) -> int:
    hour = int(value) % 24
    if suffix == "pm" and hour < 12:
        hour += 12
    if suffix == "am" and hour == 12:
        hour = 0
    return hour


def change(text: str, entities: dict[str, Any]) -> dict[str, Any]:
    """The keys this message sets: channel (moved first), locale, delivery, quiet_hours."""
    folded = fold(text)
    out: dict[str, Any] = {}
    if "channel" in entities:
        out["channel"] = entities["channel"]
    if "locale" in entities:
        out["locale"] = entities["locale"]
    if DIGEST.search(folded):
        out["delivery"] = "digest"
    elif INSTANT.search(folded):
        out["delivery"] = "instant"
    window = WINDOW.search(folded)
    after = AFTER.search(folded)
    if window:  # the hours messages are welcome: quiet is the rest of the day
        start = _hour(window.group(1), window.group(2))
        end = _hour(window.group(3), window.group(4) or ("pm" if int(window.group(3)) < start else None))
        out["quiet_hours"] = {"start": f"{end:02d}:00", "end": f"{start:02d}:00"}
    elif after:
        hour = _hour(after.group(1), after.group(3) or ("pm" if int(after.group(1)) < 12 else None))
        out["quiet_hours"] = {"start": f"{hour:02d}:{after.group(2) or '00'}", "end": NIGHT["end"]}
    elif AT_NIGHT.search(folded):
        out["quiet_hours"] = dict(NIGHT)
    return out
