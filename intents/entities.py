"""Entities from text: order numbers, SKUs and product names (exact, then fuzzy), warehouses,
suppliers, explicit dates, quantities, channels, languages, task numbers."""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from dataclasses import dataclass
from datetime import date, timedelta
from functools import cached_property
from typing import Any

from rapidfuzz import fuzz, process

from intents.model import Catalog, Named

MONTHS = {
    "january": 1, "february": 2, "march": 3, "april": 4, "may": 5, "june": 6, "july": 7, "august": 8,
    "september": 9, "october": 10, "november": 11, "december": 12, "jan": 1, "feb": 2, "mar": 3, "apr": 4,
    "jun": 6, "jul": 7, "aug": 8, "sep": 9, "sept": 9, "oct": 10, "nov": 11, "dec": 12,
    "enero": 1, "febrero": 2, "marzo": 3, "abril": 4, "mayo": 5, "junio": 6, "julio": 7, "agosto": 8,
    "septiembre": 9, "setiembre": 9, "octubre": 10, "noviembre": 11, "diciembre": 12,
}
CHANNELS = {"whatsapp": "whatsapp", "wa": "whatsapp", "sms": "sms", "text": "sms", "texts": "sms",
            "texto": "sms", "email": "email", "e-mail": "email", "mail": "email", "correo": "email",
            "emails": "email", "email.": "email"}
LANGUAGES = {"spanish": "es", "espanol": "es", "castellano": "es", "english": "en", "ingles": "en"}
# Words too common in product names or messages to identify a product on their own.
STOP = {"the", "a", "an", "of", "box", "my", "el", "la", "los", "las", "de", "del", "and", "y", "for", "with",
        "in", "on", "is", "it", "me", "i", "to"}


def fold(text: str) -> str:
    """Lower case without accents or emoji: what the rules match against."""
    # Apostrophes (straight and typographic) go: "don't" reads "dont", "where's" reads "wheres".
    text = unicodedata.normalize("NFKD", text.casefold().replace("'", "").replace("\u2019", ""))
    text = "".join(c for c in text if not unicodedata.combining(c))
    return "".join(c if c.isascii() else " " for c in text)


def words(folded: str) -> list[str]:
    return re.findall(r"[a-z0-9]+(?:[-.][a-z0-9]+)*", folded)


def compact(value: str) -> str:
    return re.sub(r"[^a-z0-9]", "", value.casefold())


@dataclass
class Matcher:
    """Fuzzy lookups against one catalog, built once per catalog."""

    catalog: Catalog

    @cached_property
    def sku_by_compact(self) -> dict[str, str]:
        return {compact(p.id): p.id for p in self.catalog.products}

    @cached_property
    def product_words(self) -> dict[str, set[str]]:
        out = {}
        for p in self.catalog.products:
            out[p.id] = {w for w in words(fold(p.name)) if (w not in STOP and not re.fullmatch(r"[\d.]+[a-z]?", w))
                         or re.fullmatch(r"\d+mm", w)}
        return out

    @cached_property
    def word_weight(self) -> dict[str, float]:
        """A word in many product names says less about which one is meant."""
        counts = Counter(w for ws in self.product_words.values() for w in ws)
        return {w: 1.0 / n for w, n in counts.items()}

    def skus(self, folded: str) -> tuple[list[str], list[str]]:
        """(the SKU named, or []), (candidates when a name fits several products)."""
        for token in re.findall(r"[a-z]{2,4}[\s-]?\d+[a-z]*", folded):
            found = self.sku_by_compact.get(compact(token))
            if found:
                return [found], []
        matched: dict[str, set[str]] = {}  # sku -> the name words the message matched
        for token in {w for w in words(folded) if w not in STOP and len(w) >= 3}:
            for word in self._words_like(token):
                for sku in self.vocabulary[word]:
                    matched.setdefault(sku, set()).add(word)
        if not matched:
            return [], []
        scores = {sku: sum(self.word_weight[w] for w in ws) for sku, ws in matched.items()}
        best = max(scores.values())
        top = sorted(s for s, v in scores.items() if v == best)
        if len(top) == 1 and best >= 0.5:
            return top, []
        # Candidates only when the words say something (not one word shared by the whole catalog).
        return [], top[:10] if best >= 0.25 else []

    @cached_property
    def vocabulary(self) -> dict[str, set[str]]:
        """Name word -> the products whose names hold it: a message is matched word by word, not product by
        product, so a catalog of thousands costs a few dictionary and rapidfuzz lookups."""
        out: dict[str, set[str]] = {}
        for sku, ws in self.product_words.items():
            for w in ws:
                out.setdefault(w, set()).add(sku)
        return out

    @cached_property
    def _fuzzy_vocabulary(self) -> list[str]:
        return sorted(w for w in self.vocabulary if len(w) >= 4)

    def _words_like(self, token: str) -> set[str]:
        found = {w for w in (token, token[:-1] if token.endswith("s") else None, token + "s")
                 if w is not None and w in self.vocabulary}
        if not found:
            found = {w for w, _, _ in process.extract(token, self._fuzzy_vocabulary, scorer=fuzz.ratio,
                                                      score_cutoff=80, limit=5)}
        return found

    def named(self, folded: str, items: tuple[Named, ...]) -> str | None:
        toks = words(folded)
        for item in items:
            if compact(item.id) in {compact(t) for t in toks}:
                return item.id
            name_words = [w for w in words(fold(item.name)) if w not in STOP]
            # Stricter than product words: "kettle" must not read as the supplier "KettleCo".
            if name_words and any(t == name_words[0] or (len(t) >= 4 and fuzz.ratio(t, name_words[0]) >= 88)
                                  for t in toks):
                return item.id
        return None


ORDER_SO = re.compile(r"\bso[\s-]?(\d{4})[\s-]?(\d{3,6})\b")
ORDER_AFTER = re.compile(r"(?:#|\b(?:order|orden|pedido|ord|no|num|number|nr|n)\.?\s*(?:no\.?|number|num|#|n)?\s*#?)"
                         r"\s*(\d{3,10})\b")
BARE_NUMBER = re.compile(r"(?<![\w./-])(\d{4,10})(?![\w/]|\.\d)")
TASK = re.compile(r"\b(?:task|tarea)\s*(?:no\.?|number|#)?\s*#?(\d{1,9})\b|#(\d{1,9})\b")
QTY = re.compile(r"\b(\d{1,4})\s*(?:x\s+)?(?:more\b|units?\b|pcs\b|pieces\b|unidades\b|[a-z]{3,})")
ISO_DATE = re.compile(r"\b(20\d{2})-(\d{2})-(\d{2})\b")
DMY = re.compile(r"\b(\d{1,2})/(\d{1,2})(?:/(\d{2,4}))?\b")
DAY_MONTH = re.compile(r"\b(\d{1,2})(?:st|nd|rd|th)?\s+(?:de\s+|of\s+)?([a-z]{3,10})\b")
MONTH_DAY = re.compile(r"\b([a-z]{3,10})\s+(\d{1,2})(?:st|nd|rd|th)?\b")


def order_id(folded: str) -> str | None:
    m = ORDER_SO.search(folded)
    if m:
        return f"SO-{m.group(1)}-{m.group(2)}"
    m = ORDER_AFTER.search(folded)
    if m:
        return m.group(1)
    for m in BARE_NUMBER.finditer(folded):
        if not ISO_DATE.search(folded[max(0, m.start() - 1):m.end() + 6]) and not re.match(r"20\d{2}$", m.group(1)):
            return m.group(1)
    return None


WEEKDAYS = {"monday": 0, "tuesday": 1, "wednesday": 2, "thursday": 3, "friday": 4, "saturday": 5, "sunday": 6,
            "lunes": 0, "martes": 1, "miercoles": 2, "jueves": 3, "viernes": 4, "sabado": 5, "domingo": 6}
RELATIVE_DAY = re.compile(r"\b(today|hoy|tomorrow|manana|pasado manana|day after tomorrow)\b")
IN_DAYS = re.compile(r"\b(?:in|en|dentro de)\s+(\d{1,3})\s+(?:days?|dias?)\b")
NEXT_WEEKDAY = re.compile(r"\b(?:next|this|on|el|el proximo|este|proximo)\s+(" + "|".join(WEEKDAYS) + r")\b")


def _relative(folded: str, today: date) -> str | None:
    """The usual relative dates: today, tomorrow, in N days, (next) Friday; "this week" is not one day."""
    m = RELATIVE_DAY.search(folded)
    if m:
        offset = {"today": 0, "hoy": 0, "tomorrow": 1, "manana": 1}.get(m.group(1), 2)
        return (today + timedelta(days=offset)).isoformat()
    m = IN_DAYS.search(folded)
    if m:
        return (today + timedelta(days=int(m.group(1)))).isoformat()
    m = NEXT_WEEKDAY.search(folded)
    if m:
        ahead = (WEEKDAYS[m.group(1)] - today.weekday()) % 7 or 7
        return (today + timedelta(days=ahead)).isoformat()
    return None


def a_date(folded: str, today: date) -> str | None:
    m = ISO_DATE.search(folded)
    if m:
        return _iso(int(m.group(1)), int(m.group(2)), int(m.group(3)))
    m = DMY.search(folded)
    if m:
        year = int(m.group(3)) if m.group(3) else today.year
        return _iso(year + 2000 if year < 100 else year, int(m.group(2)), int(m.group(1)))
    for m in DAY_MONTH.finditer(folded):
        if m.group(2) in MONTHS:
            return _iso(today.year, MONTHS[m.group(2)], int(m.group(1)))
    for m in MONTH_DAY.finditer(folded):
        if m.group(1) in MONTHS:
            return _iso(today.year, MONTHS[m.group(1)], int(m.group(2)))
    return _relative(folded, today)


def _iso(year: int, month: int, day: int) -> str | None:
    try:
        return date(year, month, day).isoformat()
    except ValueError:
        return None


def extract(text: str, catalog: Catalog, today: date, matcher: Matcher | None = None) -> tuple[dict[str, Any],
                                                                                            dict[str, list[str]]]:
    """All entities in `text`, and the ambiguous ones with their candidates."""
    folded = fold(text)
    m = matcher or Matcher(catalog)
    found: dict[str, Any] = {}
    ambiguous: dict[str, list[str]] = {}
    task = TASK.search(folded) if re.search(r"\b(task|tarea)s?\b", folded) else None
    if task:
        found["task_id"] = int(task.group(1) or task.group(2))
    else:
        oid = order_id(folded)
        if oid:
            found["order_id"] = oid
    skus, candidates = m.skus(folded)
    if skus:
        found["sku"] = skus[0]
    elif candidates:
        ambiguous["sku"] = candidates
    wh = m.named(folded, catalog.warehouses)
    if wh:
        found["warehouse_id"] = wh
    sup = m.named(folded, catalog.suppliers)
    if sup:
        found["supplier_id"] = sup
    when = a_date(folded, today)
    if when:
        found["date"] = when
    qty = _qty(folded, found)
    if qty is not None:
        found["qty"] = qty
    for w in words(folded):
        channel = CHANNELS.get(w) or (_fuzzy_channel(w) if len(w) >= 5 else None)
        if channel:
            found.setdefault("channel", channel)
        if w in LANGUAGES:
            found.setdefault("locale", LANGUAGES[w])
    return found, ambiguous


def _fuzzy_channel(word: str) -> str | None:
    """A misspelled channel name ("emial", "whatsap")."""
    for name in ("email", "whatsapp"):
        if fuzz.ratio(word, name) >= 80:
            return name
    return None


def _qty(folded: str, found: dict[str, Any]) -> int | None:
    for m in QTY.finditer(folded):
        n, word = m.group(1), folded[m.end(1):m.end()].strip()
        if n == found.get("order_id") or str(found.get("task_id")) == n or word in MONTHS or word.startswith("mm"):
            continue
        before = folded[max(0, m.start() - 12):m.start()]
        if re.search(r"(order|pedido|task|tarea|#|sku|ktl|no\.?)\s*$", before) or re.search(r"[a-z0-9]-$", before):
            continue
        if word in ("am", "pm", "h", "hours", "horas", "days", "dias", "min", "minutes"):
            continue
        return int(n)
    return None
