"""The grounding check: every date, quantity, SKU, price, order number and contact in a draft must come from
the facts it was written from. A model that invents or changes one is caught before a person sees it.

`check(text, facts, locale)` scans the text in a fixed order, each step consuming what it recognises so a later
step never reads it again (a number inside a date is not a quantity, one inside a SKU not a price):

    contacts (e-mail, URL, bare domain) -> fact strings with digits (product names), which are skipped
    -> dates (ISO, written in English or Spanish, numeric in the locale's order) -> times -> prices
    -> order numbers -> phone numbers -> SKU-like tokens -> bare numbers (quantities, days, percentages)

and compares each with an index of the facts (`_Known`): the values themselves plus what a careful writer
derives from them (a line's units ready now = qty - waiting, line totals, days between two dates, ...).
Only the facts ground a draft: never the customer's own message, which is where injected links and codes come from.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from itertools import combinations
from typing import Any
from zoneinfo import ZoneInfo

from babel.dates import get_date_format
from babel.numbers import get_decimal_symbol

from notifiers import render as notices
from notifiers import sms

KINDS = ("date", "quantity", "sku", "price", "order", "link", "contact")


@dataclass(frozen=True, slots=True)
class Problem:
    kind: str  # one of KINDS
    value: str  # the words of the draft, as written
    reason: str

    def as_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "value": self.value, "reason": self.reason}

    def describe(self) -> str:
        """One line of feedback for the model's second attempt. A link or contact is not quoted: it most likely
        came from an injected customer message, and must not travel back to the model outside the untrusted field."""
        if self.kind in ("link", "contact"):
            return f"{self.kind}: {self.reason}; leave out every link, e-mail address and phone number"
        return f'{self.kind} "{self.value}": {self.reason}'


# -- words ------------------------------------------------------------------------------------------------------

_MONTHS: dict[int, tuple[str, ...]] = {
    1: ("january", "jan", "enero", "ene"), 2: ("february", "feb", "febrero"), 3: ("march", "mar", "marzo"),
    4: ("april", "apr", "abril", "abr"), 5: ("may", "mayo"), 6: ("june", "jun", "junio"),
    7: ("july", "jul", "julio"), 8: ("august", "aug", "agosto", "ago"),
    9: ("september", "sept", "sep", "septiembre", "setiembre"), 10: ("october", "oct", "octubre"),
    11: ("november", "nov", "noviembre"), 12: ("december", "dec", "diciembre", "dic"),
}
_WEEKDAYS: dict[int, tuple[str, ...]] = {
    0: ("monday", "mon", "lunes"), 1: ("tuesday", "tues", "tue", "martes"),
    2: ("wednesday", "wed", "miércoles", "miercoles"), 3: ("thursday", "thurs", "thur", "thu", "jueves"),
    4: ("friday", "fri", "viernes"), 5: ("saturday", "sat", "sábado", "sabado"), 6: ("sunday", "sun", "domingo"),
}
_MONTH_OF = {name: n for n, names in _MONTHS.items() for name in names}
_WEEKDAY_OF = {name: n for n, names in _WEEKDAYS.items() for name in names}


def _alternation(names: Mapping[str, int]) -> str:
    return "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True))  # longest first: "sept" before "sep"


_MON = rf"(?:{_alternation(_MONTH_OF)})"
_WD = rf"(?:{_alternation(_WEEKDAY_OF)})"
_ORD = r"(?:st|nd|rd|th|º|°)"

# -- patterns, in the order check() applies them -------------------------------------------------------------------

_EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_URL = re.compile(r"(?i)\b(?:https?://|www\.)[^\s<>\"'\])]+")
_TLDS = ("com|net|org|io|co|info|biz|example|app|dev|shop|store|online|site|xyz|me|ly|link|click|top|es|mx|us|"
         "uk|de|fr|ru|cn|tk|gg|to|be|it|nl|eu|ai|cc|tv|ws|win|promo|deals|sale")
_DOMAIN = re.compile(rf"(?i)(?<![\w@./-])(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)+(?:{_TLDS})(?::\d+)?"
                     r"(?:/[^\s<>\"']*)?(?![\w-])")
_ISO = re.compile(r"(?<![\w/.-])(?P<y>\d{4})-(?P<m>\d{2})-(?P<d>\d{2})"
                  r"(?:[T ](?P<H>\d{2}):(?P<M>\d{2})(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?(?![\w-])")
_WRITTEN_DATE = re.compile(rf"""(?ix)(?<![\w])(?:
    (?:(?P<wd1>{_WD})\.?,?\s+)?(?P<m1>{_MON})\.?\s+(?P<d1>\d{{1,2}}){_ORD}?(?![\d\w])(?:,?\s+(?P<y1>\d{{4}})(?!\d))?
  | (?:(?P<wd2>{_WD})\.?,?\s+(?:(?:the|el)\s+)?)?(?P<d2>\d{{1,2}})(?:{_ORD}|\.)?\s+(?:de\s+|of\s+)?(?P<m2>{_MON})
      (?![\w])\.?(?:,?\s+(?:de\s+|del\s+)?(?P<y2>\d{{4}})(?!\d))?
  | (?P<m3>{_MON})\.?\s+(?:de\s+|del\s+|of\s+)?(?P<y3>\d{{4}})(?!\d)
)""")
_NUMERIC_DATE = re.compile(r"(?<![\w/.,-])(?P<a>\d{1,2})(?P<sep>[/.-])(?P<b>\d{1,2})"
                           r"(?:(?P=sep)(?P<y>\d{4}|\d{2}))?(?![\w/-]|[.,]\d)")
_TIME = re.compile(r"(?i)(?<![\w:.,])(?P<h>\d{1,2})(?::(?P<m>\d{2}))?\s*(?P<ap>a\.?\s?m\.?|p\.?\s?m\.?|h\b|hrs\b)"
                   r"(?![\w])|(?<![\w:.,])(?P<h2>\d{1,2}):(?P<m2>\d{2})(?![\w:])")
_AMOUNT = r"\d+(?:[.,]\d+)*"
_CUR_BEFORE = r"US\$|MX\$|CA\$|A\$|\$|€|£|\b(?:USD|EUR|MXN|GBP|CAD)\b"
_CUR_AFTER = r"€|\$|\b(?:USD|EUR|MXN|GBP|CAD|euros?|d[oó]lares|dollars?|pesos|pounds?|libras?)\b"
_MONEY = re.compile(rf"(?i)(?P<c1>{_CUR_BEFORE})\s?(?P<n1>{_AMOUNT})"
                    rf"|(?<![\w.,])(?P<n2>{_AMOUNT})\s?(?P<c2>{_CUR_AFTER})")
_ORDER = re.compile(r"(?i)(?:(?<![\w&])#\s?(?P<h>[A-Za-z0-9][A-Za-z0-9-]*)"
                    r"|\b(?:orders?|pedidos?|[oó]rden(?:es)?)\b(?:\s+(?:no\.?|nr\.?|num\.?|number|n\.?\s?º|n°|núm\.?"
                    r"|n[uú]mero|id))?\s*[:#]?\s*(?P<w>[A-Za-z]*-?\d[A-Za-z0-9-]*))")
_PHONE = re.compile(r"(?<![\w+])(?:\+|\(?\b)\d[\d ().-]{5,}\d(?![\w])")
_SKU_LIKE = re.compile(r"(?<![\w-])(?=[\w-]*[A-Za-z])(?=[\w-]*\d)[A-Za-z0-9]+(?:-[A-Za-z0-9]+)*(?![\w-])")
_NUMBER_WITH_UNIT = re.compile(r"\d+(?:[.,]\d+)?[A-Za-zº°ª]{1,3}")  # 2x, 5mm, 9th, 18V: a number, not a SKU
_NUMBER = re.compile(r"(?<![\w.,])(?P<n>\d+(?:[.,]\d+)*)(?P<suffix>[A-Za-zº°ª%]{0,3})(?![\w])")
_PERCENT_AFTER = re.compile(r"(?i)\s*(?:%|per\s?cent|por\s+ciento)")
_DAYS_AFTER = re.compile(r"(?i)\s*(?:more\s+|extra\s+|m[aá]s\s+)?(?:business\s+|working\s+|h[aá]biles\s+)?"
                         r"(?:days?|d[ií]as?)\b")
_WEEKS_AFTER = re.compile(r"(?i)\s*(?:more\s+|m[aá]s\s+)?(?:weeks?|semanas?)\b")
_ITEM_LEAD = re.compile(r"(?i)\s*(?:×|x\b|\*)?\s*(?:(?:units?|pieces?|pcs\.?|unidades|unidad|piezas?)\s+"
                        r"(?:of\s+|de\s+)?)?(?:(?:the|your|our|los|las|el|la|sus|su)\s+)?")
_TOKEN = re.compile(r"[A-Za-z0-9]+(?:[-_./:][A-Za-z0-9]+)*")
_DIGITS_IN = re.compile(r"\d+(?:[.,]\d+)?")
_CENT = Decimal("0.01")

_MONEY_KEY = re.compile(r"(?i)price|value|amount|total|cost|refund|credit|discount|paid")
_NAME_KEY = re.compile(r"(?i)name|title|description|attributes")
_CURRENCY_OF = {"$": ("USD", "MXN", "CAD", "AUD", "ARS", "CLP", "COP"), "us$": ("USD",), "mx$": ("MXN",),
                "ca$": ("CAD",), "a$": ("AUD",), "€": ("EUR",), "£": ("GBP",), "euro": ("EUR",), "euros": ("EUR",),
                "dollar": ("USD", "CAD", "AUD"), "dollars": ("USD", "CAD", "AUD"), "dólares": ("USD",),
                "dolares": ("USD",), "peso": ("MXN", "ARS", "CLP", "COP"), "pesos": ("MXN", "ARS", "CLP", "COP"),
                "pound": ("GBP",), "pounds": ("GBP",), "libra": ("GBP",), "libras": ("GBP",)}


# -- what the facts say -------------------------------------------------------------------------------------------

@dataclass
class _Known:
    """Every value a draft may mention, indexed the way the text will be compared with it."""

    dates: set[date] = field(default_factory=set)
    times: set[tuple[int, int]] = field(default_factory=set)
    numbers: set[Decimal] = field(default_factory=set)
    money: set[Decimal] = field(default_factory=set)
    spans: set[int] = field(default_factory=set)  # days between two dates of the facts
    percents: set[Decimal] = field(default_factory=set)
    items: list[tuple[tuple[str, ...], set[Decimal]]] = field(default_factory=list)  # (labels, its quantities)
    tokens: set[str] = field(default_factory=set)  # every word of every fact string, upper-cased
    skus: set[str] = field(default_factory=set)
    orders: set[str] = field(default_factory=set)
    line_ids: set[str] = field(default_factory=set)
    urls: set[str] = field(default_factory=set)
    hosts: set[str] = field(default_factory=set)
    emails: set[str] = field(default_factory=set)
    phones: set[str] = field(default_factory=set)  # digits only
    phrases: list[str] = field(default_factory=list)
    currencies: set[str] = field(default_factory=set)


def _dec(value: Any) -> Decimal | None:
    try:
        return Decimal(str(value)).quantize(_CENT, rounding=ROUND_HALF_UP)
    except (InvalidOperation, ValueError):
        return None


def _moment(value: Any) -> date | datetime | None:
    """A date or datetime from the facts (ISO strings, as JSON carries them), else None."""
    if isinstance(value, datetime | date):
        return value
    if not isinstance(value, str) or not re.fullmatch(r"\d{4}-\d{2}-\d{2}(?:[T ].*)?", value):
        return None
    try:
        return date.fromisoformat(value) if len(value) == 10 else datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _day_of(value: Any) -> date | None:
    moment = _moment(value)
    return moment.date() if isinstance(moment, datetime) else moment


def _walk(node: Any, key: str = "", parent: str = "") -> Iterator[tuple[str, str, Any]]:
    """(key, parent key, value) for every leaf of the facts."""
    if isinstance(node, Mapping):
        for k, v in node.items():
            yield from _walk(v, str(k), key)
    elif isinstance(node, list | tuple):
        for v in node:
            yield from _walk(v, key, parent)
    else:
        yield key, parent, node


def _num(d: Mapping[str, Any], key: str) -> int | float | None:
    v = d.get(key)
    return v if isinstance(v, int | float) and not isinstance(v, bool) else None


class _Index:
    """Builds _Known from the facts: values first, then what follows from them."""

    def __init__(self, facts: Mapping[str, Any], locale: str) -> None:
        self.facts = facts
        self.resolved = notices.resolve_locale(locale)
        self.babel = notices.babel_locale(locale)  # the locale our notices print in
        self.tz = notices.facts_timezone(facts)
        self.k = _Known()

    def build(self) -> _Known:
        for key, parent, value in _walk(self.facts):
            self._leaf(key, parent, value)
        self._derive_items()
        self._derive_dates()
        self._derive_prices()
        return self.k

    def _leaf(self, key: str, parent: str, value: Any) -> None:
        k = self.k
        if isinstance(value, bool) or value is None:
            return
        if isinstance(value, int | float):
            k.numbers.add(_dec(value) or Decimal(0))
            if _MONEY_KEY.search(key):
                k.money.add(_dec(value) or Decimal(0))
            return
        moment = _moment(value)
        if moment is not None:
            self._moment(moment)
            return
        if not isinstance(value, str):
            return
        self._string(key, parent, value)

    def _string(self, key: str, parent: str, value: str) -> None:
        k = self.k
        # An SMS folds "60×60" to "60x60" (notifiers/sms.py): the folded words are the fact's words too.
        for form in {value, sms.fold_to_gsm(value)}:
            k.tokens.update(t.upper() for t in _TOKEN.findall(form))
            k.tokens.update(part.upper() for t in _TOKEN.findall(form) for part in re.split(r"[-_./:]", t))
        low = key.lower()
        if low == "sku" or low.endswith("_sku"):
            k.skus.add(value.upper())
        if low == "order_id" or (low == "id" and parent.lower() in ("order", "orders")):
            k.orders.add(value.upper())
        if low == "line_id":
            k.line_ids.add(value.upper())
        elif value.isdigit() and (low == "id" or low.endswith("_id")):
            k.numbers.add(Decimal(value).quantize(_CENT))  # "Reply SWAP 7": an id the text may print
        if low == "currency":
            k.currencies.add(value.upper())
        if _NAME_KEY.search(key) or _NAME_KEY.search(parent):
            k.numbers.update(d for d in (_dec(n.replace(",", ".")) for n in _DIGITS_IN.findall(value)) if d is not None)
            if any(c.isdigit() for c in value) and len(value) >= 3:
                k.phrases.append(value)
        for url in _URL.findall(value) + _DOMAIN.findall(value):
            k.urls.add(_norm_url(url))
            k.hosts.add(_host(url))
        k.emails.update(e.lower() for e in _EMAIL.findall(value))
        if "phone" in low or _PHONE.fullmatch(value.strip()):
            k.phones.add(re.sub(r"\D", "", value))

    def _moment(self, moment: date | datetime) -> None:
        k = self.k
        if isinstance(moment, datetime):
            aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
            for zone in {ZoneInfo("UTC"), ZoneInfo(self.tz)}:
                local = aware.astimezone(zone)
                k.dates.add(local.date())
                k.times.add((local.hour, local.minute))
        else:
            k.dates.add(moment)

    def _derive_items(self) -> None:
        """A line's units: ordered, waiting, ready now, reserved, shipped; and counts and sums over lines."""
        k = self.k
        items = [it for it in (self.facts.get("items") or []) if isinstance(it, Mapping)]
        totals: dict[str, Decimal] = {}
        for it in items:
            qty, waiting = _num(it, "qty"), _num(it, "waiting")
            alloc, shipped = _num(it, "qty_allocated"), _num(it, "qty_shipped")
            own = [v for v in (qty, waiting, alloc, shipped) if v is not None]
            if qty is not None and waiting is not None:
                own.append(qty - waiting)
            if alloc is not None and shipped is not None:
                own.append(alloc - shipped)
            if qty is not None and shipped is not None:
                own.append(qty - shipped)
            quantities = {d for d in map(_dec, own) if d is not None and d >= 0}
            labels = tuple(str(it[f]).lower() for f in ("name", "sku") if it.get(f))
            if labels:
                k.items.append((labels, quantities))
            k.numbers |= quantities
            price = _num(it, "unit_price")
            if price is not None:
                k.money.update(d for d in (_dec(Decimal(str(price)) * q) for q in quantities) if d is not None)
            for name, v in (("qty", qty), ("waiting", waiting)):
                totals[name] = totals.get(name, Decimal(0)) + Decimal(str(v or 0))
            if qty is not None and waiting is not None:
                totals["ready"] = totals.get("ready", Decimal(0)) + Decimal(str(qty - waiting))
        k.numbers.update(Decimal(n).quantize(_CENT) for n in range(1, len(items) + 1))  # "2 of your 3 items"
        k.numbers.update(v.quantize(_CENT) for v in totals.values())

    def _derive_dates(self) -> None:
        """Days between the dates a sentence measures from ("5 days late", "in 3 days", "6 days later than we
        said") and the others; years alone ("in 2027"). Not every pair: the more spans, the more a wrong number
        of days could pass by chance."""
        f = self.facts
        order = f.get("order") if isinstance(f.get("order"), Mapping) else {}
        anchors = [_day_of(v) for v in (f.get("today"), order.get("promised_date"), order.get("placed_at"))]
        pairs = [(a, d) for a in anchors if a is not None for d in self.k.dates]
        offer = f.get("offer") if isinstance(f.get("offer"), Mapping) else {}
        for it in f.get("items") or []:
            if isinstance(it, Mapping):
                eta = _day_of(it.get("eta"))
                pairs += [(eta, _day_of(it.get("previous_eta"))), (eta, _day_of(offer.get("available_on")))]
        self.k.spans.update(abs((b - a).days) for a, b in pairs if a is not None and b is not None)
        self.k.numbers.update(Decimal(d.year).quantize(_CENT) for d in self.k.dates)

    def _derive_prices(self) -> None:
        """A substitute's price next to the original's: the difference, in money and in percent."""
        k = self.k
        prices = sorted({v for key, _, v in _walk(self.facts) if "price" in key.lower()
                         and isinstance(v, int | float) and not isinstance(v, bool)})
        for a, b in combinations(prices, 2):
            k.money.add(_dec(abs(b - a)) or Decimal(0))
            for base in (a, b):
                if base:
                    pct = abs(b - a) / base * 100
                    k.percents.update({_dec(round(pct)) or Decimal(0), _dec(round(pct, 1)) or Decimal(0)})


def _norm_url(url: str) -> str:
    url = url.rstrip(".,;:!?'\")»]").lower()
    url = re.sub(r"^https?://", "", url)
    return url.removeprefix("www.").rstrip("/")


def _host(url: str) -> str:
    return _norm_url(url).split("/", 1)[0].split(":", 1)[0]


# -- reading the draft ----------------------------------------------------------------------------------------------

class _Scan:
    """The text being checked; what a step recognised is blanked so later steps do not read it again."""

    def __init__(self, text: str, known: _Known, locale: str) -> None:
        self.text = text
        self.original = text  # same length as text: what follows a number, even if already blanked
        self.k = known
        self.resolved = notices.resolve_locale(locale)
        babel = notices.babel_locale(locale)
        self.decimal = get_decimal_symbol(babel)
        # How the locale writes 3/9: M/d/yy (en) puts the month first, d/M/yy (es, en_GB) the day.
        self.month_first = get_date_format("short", locale=babel).pattern.startswith("M")
        self.problems: dict[tuple[str, str], Problem] = {}

    def consume(self, pattern: re.Pattern[str], judge: Callable[[re.Match[str]], bool]) -> None:
        """Run `pattern` over what is left; `judge` records any problem and says whether the match is taken."""
        for m in list(pattern.finditer(self.text)):
            if judge(m):
                self.blank(m.start(), m.end())

    def blank(self, start: int, end: int) -> None:
        self.text = self.text[:start] + " " * (end - start) + self.text[end:]

    def flag(self, kind: str, value: str, reason: str) -> None:
        value = value.strip()
        self.problems.setdefault((kind, value), Problem(kind, value, reason))

    # -- steps -------------------------------------------------------------------------------------------------

    def contacts(self) -> None:
        def email(m: re.Match[str]) -> bool:
            if m.group(0).lower() not in self.k.emails:
                self.flag("contact", m.group(0), "e-mail address not in the facts")
            return True

        def link(m: re.Match[str]) -> bool:
            raw = m.group(0).rstrip(".,;:!?'\")»]")
            url = _norm_url(raw)
            if url not in self.k.urls and not ("/" not in url and url in self.k.hosts):
                self.flag("link", raw, "link not in the facts")
            self.blank(m.start(), m.start() + len(raw))
            return False

        self.consume(_EMAIL, email)
        self.consume(_URL, link)
        self.consume(_DOMAIN, link)

    def phrases(self) -> None:
        """Fact strings with digits printed as they are ("LED Panel 60×60 cm 4000 K"): nothing in them to check."""
        for phrase in sorted(set(self.k.phrases), key=len, reverse=True):
            for m in list(re.finditer(rf"(?<!\w){re.escape(phrase)}(?!\w)", self.text, re.IGNORECASE)):
                self.blank(m.start(), m.end())

    def dates(self) -> None:
        self.consume(_ISO, self._iso)
        self.consume(_WRITTEN_DATE, self._written)
        self.consume(_NUMERIC_DATE, self._numeric)
        self.consume(_TIME, self._time)

    def _iso(self, m: re.Match[str]) -> bool:
        self._date(m.group(0), int(m["y"]), int(m["m"]), int(m["d"]), None)
        if m["H"] is not None and (int(m["H"]), int(m["M"])) not in self.k.times:
            self.flag("date", m.group(0), "time not in the facts")
        return True

    def _written(self, m: re.Match[str]) -> bool:
        if m["m3"]:  # "March 2027": some date of the facts must fall in that month
            month, year = _MONTH_OF[m["m3"].lower()], int(m["y3"])
            if not any((d.year, d.month) == (year, month) for d in self.k.dates):
                self.flag("date", m.group(0), "no date in the facts falls in that month")
            return True
        n = "1" if m["m1"] else "2"
        wd = m[f"wd{n}"]
        self._date(m.group(0), int(m[f"y{n}"]) if m[f"y{n}"] else None, _MONTH_OF[m[f"m{n}"].lower()],
                   int(m[f"d{n}"]), _WEEKDAY_OF[wd.lower()] if wd else None)
        return True

    def _numeric(self, m: re.Match[str]) -> bool:
        if m["sep"] != "/" and m["y"] is None:  # 12.50 and 3-5 are numbers, not dates
            return False
        a, b = int(m["a"]), int(m["b"])
        month, day = (a, b) if self.month_first else (b, a)
        year = int(m["y"]) if m["y"] else None
        if year is not None and year < 100:
            year += 2000
        self._date(m.group(0), year, month, day, None)
        return True

    def _date(self, value: str, year: int | None, month: int, day: int, weekday: int | None) -> None:
        same = [d for d in self.k.dates if (d.month, d.day) == (month, day) and year in (None, d.year)]
        if not same:
            self.flag("date", value, "not a date in the facts")
        elif weekday is not None and all(d.weekday() != weekday for d in same):
            self.flag("date", value, "the weekday does not match the date")

    def _time(self, m: re.Match[str]) -> bool:
        if m["h2"] is not None:
            hour, minute = int(m["h2"]), int(m["m2"])
        else:
            hour, minute = int(m["h"]) % 12, int(m["m"] or 0)
            ap = m["ap"].lower().replace(".", "").replace(" ", "")
            hour = hour + 12 if ap == "pm" else (int(m["h"]) if ap in ("h", "hrs") else hour)
        if (hour, minute) not in self.k.times:
            self.flag("date", m.group(0), "time not in the facts")
        return True

    def prices(self) -> None:
        def judge(m: re.Match[str]) -> bool:
            raw, cur = (m["n1"], m["c1"]) if m["n1"] else (m["n2"], m["c2"])
            if not _amounts(raw, self.decimal) & self.k.money:
                self.flag("price", m.group(0), "amount not in the facts")
            codes = _CURRENCY_OF.get(cur.lower(), (cur.upper(),))
            if self.k.currencies and not set(codes) & self.k.currencies:
                self.flag("price", m.group(0), f"currency is not {', '.join(sorted(self.k.currencies))}")
            return True

        self.consume(_MONEY, judge)

    def orders(self) -> None:
        def judge(m: re.Match[str]) -> bool:
            ref = (m["h"] or m["w"]).upper()
            if ref not in self.k.orders and not (m["h"] and ref in self.k.line_ids):
                self.flag("order", m.group(0), "order number not in the facts")
            return True

        self.consume(_ORDER, judge)

    def phones(self) -> None:
        def judge(m: re.Match[str]) -> bool:
            raw = m.group(0)
            digits = re.sub(r"\D", "", raw)
            groups = len(re.findall(r"\d+", raw))
            if not 7 <= len(digits) <= 15 or not (raw.startswith(("+", "(")) or groups >= 3):
                return False  # a long bare number is read as a quantity later
            if not any(p and (digits.endswith(p[-9:]) or p.endswith(digits[-9:])) for p in self.k.phones):
                self.flag("contact", raw, "phone number not in the facts")
            return True

        self.consume(_PHONE, judge)

    def skus(self) -> None:
        prefixes = {re.match(r"[A-Z]*", o).group(0) for o in self.k.orders} - {""}  # type: ignore[union-attr]

        def judge(m: re.Match[str]) -> bool:
            token = m.group(0)
            if _NUMBER_WITH_UNIT.fullmatch(token) and token.upper() not in self.k.tokens:
                return False
            if token.upper() not in self.k.skus and token.upper() not in self.k.tokens:
                is_order = any(token.upper().startswith(p + "-") for p in prefixes)
                self.flag("order" if is_order else "sku", token,
                          "order number not in the facts" if is_order else "code not in the facts")
            return True

        self.consume(_SKU_LIKE, judge)

    def numbers(self) -> None:
        def judge(m: re.Match[str]) -> bool:
            values = _amounts(m["n"], self.decimal)
            after = self.original[m.end():]
            if m["suffix"] == "%" or _PERCENT_AFTER.match(after):
                allowed, what = self.k.percents | self.k.numbers, "percentage"
            elif _DAYS_AFTER.match(after):
                allowed, what = self.k.numbers | {Decimal(s).quantize(_CENT) for s in self.k.spans}, "number of days"
            elif _WEEKS_AFTER.match(after):
                weeks = {Decimal(w).quantize(_CENT) for s in self.k.spans for w in (s // 7, -(-s // 7))}
                allowed, what = self.k.numbers | weeks, "number of weeks"
            else:
                allowed, what = self._for_item(after)
                if what == "number" and re.search(r"[.,]\d{1,2}$", m["n"]):
                    allowed = allowed | self.k.money  # "40.00", "1,354.50": an amount, printed without currency
            if not values & allowed:
                self.flag("quantity", m.group(0), f"{what} not in the facts")
            return True

        self.consume(_NUMBER, judge)

    def _for_item(self, after: str) -> tuple[set[Decimal], str]:
        """A number right before a line's name or SKU must be one of that line's quantities."""
        lead = _ITEM_LEAD.match(after)
        rest = after[lead.end() if lead else 0:].lower()
        for labels, quantities in self.k.items:
            if any(rest.startswith(label) for label in labels):
                return quantities, f"quantity for {labels[-1].upper()}"
        return self.k.numbers, "number"


def _amounts(raw: str, decimal: str) -> set[Decimal]:
    """The values a written number may mean: '1,234.50' is 1234.50; '1,234' is 1234 (or 1.234 where ',' is the
    decimal mark); '12,50' is 12.50."""
    if "." in raw and "," in raw:
        dec = "." if raw.rfind(".") > raw.rfind(",") else ","
        group = "," if dec == "." else "."
        return {d for d in [_dec(raw.replace(group, "").replace(dec, "."))] if d is not None}
    for sep in ",.":
        if sep not in raw:
            continue
        parts = raw.split(sep)
        if len(parts) > 2 or (len(parts[1]) == 3 and sep != decimal):
            out = {_dec(raw.replace(sep, ""))}
            if len(parts) == 2:
                out.add(_dec(raw.replace(sep, ".")))
            return {d for d in out if d is not None}
        return {d for d in [_dec(raw.replace(sep, "."))] if d is not None}
    return {d for d in [_dec(raw)] if d is not None}


def check(text: str, facts: Mapping[str, Any], locale: str) -> list[Problem]:
    """Every date, quantity, SKU, price, order number, link, e-mail address and phone number in `text` that the
    facts do not bear out, in the order found kind by kind. An empty list: the draft is grounded."""
    scan = _Scan(text, _Index(facts, locale).build(), locale)
    for step in (scan.contacts, scan.phrases, scan.dates, scan.prices, scan.orders, scan.phones, scan.skus,
                 scan.numbers):
        step()
    return list(scan.problems.values())


def printed(facts: Mapping[str, Any], locale: str) -> dict[str, dict[str, str]]:
    """The facts' dates and amounts as our notices print them for this reader (notifiers/render.py's `day` and
    `money` filters): {"dates": {"2027-03-09": "Mar 9, 2027"}, "money": {"40.0": "40.00"}}. The model is asked to
    write them so, which keeps a draft's dates looking like a notice's."""
    env = notices.environment(False)
    dates: dict[str, str] = {}
    money: dict[str, str] = {}
    with notices.reading_as(locale, facts):
        for key, _, value in _walk(facts):
            if isinstance(value, str) and _moment(value) is not None:
                dates[value] = env.filters["day"](value)
            elif isinstance(value, int | float) and not isinstance(value, bool) and _MONEY_KEY.search(key):
                money[str(value)] = env.filters["money"](value)
    return {"dates": dates, "money": money}
