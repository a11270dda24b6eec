"""Notices from templates: one wording per kind and locale (prompts/notify/<locale>/<kind>.j2), laid out per style.

A kind template fills blocks (subject, intro, details, outro, headline, sms_details) and extends the layout
of the style being rendered: `text` (console, chat, e-mail text part), `html`, `subject` or `sms`. A file
`<kind>.<channel>.j2` or `<kind>.<style>.j2` beside it wins over it, for a channel that needs its own form.
Facts are plain JSON data, so dates arrive as ISO strings; the filters format them for the locale.

Speed: the planner renders one notice per message inside its transactions, so a render must stay cheap
(bench/render.py). Templates are loaded and compiled once per process (auto_reload is off: an edited template
needs a restart) and looked up once per (kind, channel, style, locale). The wording libraries
(`<locale>/_lib.j2`, `layout/parts.j2`, `layout/digest.j2`) are imported without context, so Jinja builds
each module once per environment instead of once per render: their macros read only their arguments and the
environment's globals (`html`), and the date and number filters read the reader's locale and time zone from
`_reader`, which `_Job.render` sets around each render.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import cache, lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from babel import Locale, UnknownLocaleError
from babel.dates import format_date, format_time, get_datetime_format
from babel.numbers import format_decimal
from jinja2 import FileSystemLoader, StrictUndefined, Template, Undefined
from jinja2.environment import TemplateModule
from jinja2.runtime import Context, Macro
from jinja2.sandbox import SandboxedEnvironment

from notifiers import rules, sms
from notifiers.sms import SMS_MAX_SEGMENTS
from prompts import TEMPLATE_DIR

NOTIFY_DIR = TEMPLATE_DIR / "notify"

# The kinds the rules make, plus the digest that folds customer notices together.
CUSTOMER_KINDS: tuple[str, ...] = (*rules.CUSTOMER_KINDS, "digest")
INTERNAL_KINDS: tuple[str, ...] = rules.INTERNAL_KINDS
KINDS: tuple[str, ...] = CUSTOMER_KINDS + INTERNAL_KINDS
LOCALES: tuple[str, ...] = ("en", "es")
DEFAULT_LOCALE = "en"
TEMPLATE_CHANNELS: tuple[str, ...] = ("console", "email", "sms", "whatsapp")

__all__ = [
    "CUSTOMER_KINDS", "INTERNAL_KINDS", "KINDS", "LOCALES", "SMS_MAX_SEGMENTS", "TEMPLATE_CHANNELS", "Rendered",
    "environment", "render_approved", "render_notice", "resolve_locale", "template_names",
]

# Names render_notice puts beside the facts; a fact with one of these names would be shadowed.
_RESERVED = frozenset({"audience", "channel", "kind", "lang", "layout", "lib", "locale", "max_items", "style", "tz"})
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclass(frozen=True, slots=True)
class Rendered:
    body: str  # plain text body
    subject: str | None = None  # e-mail only
    html: str | None = None  # e-mail only (autoescaped HTML)
    card: dict[str, Any] | None = None  # chat channels: title, fields, actions, topic (see card())


def _defined(value: Any) -> Any:
    if isinstance(value, Undefined):
        str(value)  # StrictUndefined raises its UndefinedError: a missing fact, not a bad value
    return value


def _parse(value: object) -> date | datetime:
    value = _defined(value)
    if isinstance(value, date):  # datetime is a date too
        return value
    if isinstance(value, str):
        return date.fromisoformat(value) if len(value) == 10 else datetime.fromisoformat(value)
    raise ValueError(f"not a date: {value!r} (guard optional dates with {{% if %}} in the template)")


def _local(value: datetime, tz: str) -> datetime:
    """An aware datetime in the reader's zone; a naive one is taken as UTC, the store's clock."""
    aware = value if value.tzinfo else value.replace(tzinfo=UTC)
    return aware.astimezone(ZoneInfo(tz))


# The reader of the notice being rendered: (Babel locale, IANA time zone). Set by _Job.render for the length of
# one render, so that the filters also work inside the macros of libraries imported without context.
_reader: ContextVar[tuple[str, str]] = ContextVar("notice_reader")


@contextmanager
def _reading(locale: str, tz: str) -> Iterator[None]:
    token = _reader.set((locale, tz))
    try:
        yield
    finally:
        _reader.reset(token)


def _format_day(d: date | datetime, locale: str, tz: str) -> str:
    if isinstance(d, datetime):
        d = _local(d, tz).date()
    return format_date(d, format="medium", locale=locale)


def _format_when(d: date | datetime, locale: str, tz: str) -> str:
    if not isinstance(d, datetime):
        return _format_day(d, locale, tz)
    local = _local(d, tz)
    # CLDR's own glue for a medium date and a short time ('{1}, {0}'): no seconds, unlike format_datetime.
    glue = get_datetime_format("medium", locale=locale)
    return glue.format(format_time(local, "short", locale=locale), format_date(local, "medium", locale=locale))


# Facts carry dates as ISO strings, and a batch repeats the same few: format each once per (locale, zone).
@lru_cache(maxsize=4096)
def _day_of_iso(value: str, locale: str, tz: str) -> str:
    return _format_day(_parse(value), locale, tz)


@lru_cache(maxsize=4096)
def _when_of_iso(value: str, locale: str, tz: str) -> str:
    return _format_when(_parse(value), locale, tz)


def _day(value: object) -> str:
    """A date (or the reader's local day of a datetime) as the locale writes it: 'Mar 9, 2026', '9 mar 2026'."""
    if type(value) is str:
        return _day_of_iso(value, *_reader.get())
    return _format_day(_parse(value), *_reader.get())


def _when(value: object) -> str:
    """A datetime in the reader's zone, with hours and minutes: 'Mar 9, 2026, 2:05 PM'."""
    if type(value) is str:
        return _when_of_iso(value, *_reader.get())
    return _format_when(_parse(value), *_reader.get())


def _money(value: float) -> str:
    """A plain amount with two decimals: the facts carry no currency, so none is printed."""
    return format_decimal(_defined(value), format="#,##0.00", locale=_reader.get()[0])


def _clip(text: str, width: int) -> str:
    """At most `width` characters, cut with '...' (GSM-7, unlike '…', so it never costs an SMS its alphabet)."""
    text = str(_defined(text))
    return text if len(text) <= width else text[: width - 3].rstrip(" ,;:-") + "..."


_DICT_ATTRIBUTES = frozenset(dir(dict))


class _NoticeEnvironment(SandboxedEnvironment):
    """The sandbox, with shortcuts for what a notice does most; each gives what the general path would.

    - `it.eta` on a plain dict of facts: Jinja tries the attribute first and the key after it. A plain dict
      has no attribute beyond dir(dict), so for any other name that try can only fail (an AttributeError
      raised and caught every time) and the key decides: look the key up directly. A missing key, and every
      other object, goes the usual way.
    - `w.item` on an imported library: a macro under a public name is what the sandbox lets through as is
      (a module is no function, method, type, frame or generator, and the name has no leading '_').
    - a call of a template's own macro: the sandbox has nothing to refuse (a Macro is never unsafe_callable
      or alters_data) and Context.call would pass it the eval context (Macro.__call__ is pass_eval_context);
      do just that.
    - template globals: a plain dict, built when the template is loaded (so set env.globals before loading
      any), instead of a ChainMap over the environment's; importing a library without context compares the
      importer's globals with the library's on every import, and a dict makes that check cheap.
    """

    def getattr(self, obj: Any, attribute: str) -> Any:
        kind = type(obj)
        if kind is dict and attribute not in _DICT_ATTRIBUTES:
            try:
                return obj[attribute]
            except KeyError:
                pass
        elif kind is TemplateModule and not attribute.startswith("_"):
            value = getattr(obj, attribute, None)
            if type(value) is Macro:
                return value
        return super().getattr(obj, attribute)

    def call(self, context: Context, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        if type(obj) is not Macro:
            return super().call(context, obj, *args, **kwargs)
        kwargs.pop("_block_vars", None)  # what Context.call drops: only pass_context callables get them
        kwargs.pop("_loop_vars", None)
        try:
            return obj(context.eval_ctx, *args, **kwargs)
        except StopIteration:  # as Context.call does
            return self.undefined("value was undefined because a callable raised a StopIteration exception")

    def make_globals(self, d: MutableMapping[str, Any] | None) -> MutableMapping[str, Any]:
        return {**self.globals, **(d or {})}


@cache
def environment(html: bool, one_line: bool = False) -> SandboxedEnvironment:
    """Sandboxed and strict like prompts.environment(). The HTML one autoescapes everything it loads: it
    loads the same wording templates as the text one, but renders them into markup (its global `html` is
    true; layout/parts.j2 reads it). Templates are compiled once: no reload when a file changes.
    The filters `day`, `when` and `money` need the reader set (render_notice does it).

    `one_line`: every value printed has its tabs and line breaks turned into spaces: the card template
    is parsed line by line and tab by tab, and a customer named "Eve\naction\t…" must not add a button."""
    env = _NoticeEnvironment(loader=FileSystemLoader(NOTIFY_DIR), undefined=StrictUndefined, autoescape=html,
                             trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=False,
                             auto_reload=False, cache_size=-1,  # -1: a dict, never evicts; ~40 templates
                             finalize=_one_line if one_line else None)
    env.filters.update(day=_day, when=_when, money=_money, clip=_clip)
    env.globals["html"] = html
    return env


_BREAKS = re.compile(r"[\t\r\n\v\f\x1c-\x1e\x85\u2028\u2029]+")


def _one_line(value: Any) -> Any:
    return _BREAKS.sub(" ", value) if isinstance(value, str) else value


@lru_cache(maxsize=1024)  # channels are open-ended (any valid name renders as text); keep the cache bounded
def _template(kind: str, channel: str, style: str, locale: str) -> Template:
    return environment(style == "html").select_template(template_names(kind, channel, style, locale))


def resolve_locale(locale: str) -> str:
    """The template locale for a customer's locale: 'es-MX' -> 'es', anything unknown -> 'en'."""
    tag = (locale or "").replace("_", "-").lower()
    for candidate in (tag, tag.split("-", 1)[0]):
        if candidate in LOCALES:
            return candidate
    return DEFAULT_LOCALE


@lru_cache(maxsize=1024)
def _babel_locale(locale: str, resolved: str) -> str:
    """The regional variant for numbers and dates ('es_MX'), but never a language the text is not in."""
    try:
        parsed = Locale.parse((locale or "").replace("_", "-"), sep="-")
    except (ValueError, TypeError, UnknownLocaleError):
        return resolved
    return str(parsed) if parsed.language == resolved else resolved


def _timezone(facts: dict[str, Any]) -> str:
    customer = facts.get("customer")
    tz = customer.get("timezone") if isinstance(customer, dict) else None
    try:
        ZoneInfo(tz or "UTC")
    except (ValueError, KeyError, TypeError):  # ZoneInfoNotFoundError is a KeyError; a malformed key a ValueError
        return "UTC"
    return tz or "UTC"


def babel_locale(locale: str) -> str:
    """The Babel locale notices are printed in for a reader's locale (drafting/grounding.py reads dates so)."""
    return _babel_locale(locale, resolve_locale(locale))


def facts_timezone(facts: Mapping[str, Any]) -> str:
    """The reader's time zone named in the facts (their customer's), or UTC."""
    return _timezone(dict(facts))


@contextmanager
def reading_as(locale: str, facts: Mapping[str, Any]) -> Iterator[None]:
    """The `day`, `when` and `money` filters, outside a render, for this reader."""
    with _reading(babel_locale(locale), facts_timezone(facts)):
        yield


def template_names(kind: str, channel: str, style: str, locale: str) -> list[str]:
    """Candidates, most specific first: the channel's own form, the style's, then the kind's wording.
    E-mail has three styles (subject, text, html), so it has no single channel form."""
    names = [f"{locale}/{kind}.{channel}.j2"] if channel not in ("email", style) else []
    return [*names, f"{locale}/{kind}.{style}.j2", f"{locale}/{kind}.j2"]


_EMPTY_P = re.compile(r"<p></p>\n?")
_BLANK_RUN = re.compile(r"\n{3,}")


def _tidy(text: str, style: str) -> str:
    """Drop what empty blocks leave behind: blank-line runs in text, empty paragraphs in HTML."""
    if style in ("sms", "subject"):
        return " ".join(text.split())
    out = "\n".join([line.rstrip() for line in text.strip().splitlines()])
    if style == "html":
        # No space before a paragraph's end: what re.sub(r"\s+</p>", "</p>", out) does, without trying the
        # pattern at every character of the page (str.rstrip and \s agree on what is whitespace).
        paras = out.split("</p>")
        out = _EMPTY_P.sub("", "</p>".join([p.rstrip() for p in paras[:-1]] + paras[-1:]))
    return _BLANK_RUN.sub("\n\n", out) if "\n\n\n" in out else out


@dataclass(frozen=True, slots=True)
class _Job:
    """One notice being rendered: which templates, and the values every style of it sees."""

    kind: str
    channel: str
    locale: str  # the template directory
    values: dict[str, Any]

    def render(self, style: str, max_items: int | None = None) -> str:
        template = _template(self.kind, self.channel, style, self.locale)
        with _reading(self.values["locale"], self.values["tz"]):
            text = template.render({**self.values, "style": style, "layout": f"layout/{style}.j2",
                                    "max_items": max_items})
        return _tidy(text, style)


def _list_len(facts: dict[str, Any]) -> int:
    """How many listed things an SMS could leave out: items, a digest's items and products, or top SKUs."""
    if "entries" in facts:
        return sum(len(e.get("items") or []) + (1 if e.get("product") else 0) for e in facts["entries"])
    return max(len(facts.get("items") or []), len(facts.get("top_skus") or []))


def _fits(text: str) -> bool:
    return sms.segments(text) <= SMS_MAX_SEGMENTS


def _render_sms(job: _Job, facts: dict[str, Any]) -> str:
    """Two segments at most: fold to GSM-7 first, then list fewer items, and only then cut the text."""
    body = job.render("sms")
    if _fits(body):
        return body
    body = sms.fold_to_gsm(body)
    if _fits(body):
        return body
    # The longest list that fits, by bisection: a digest can hold hundreds of items.
    best, lo, hi = None, 1, _list_len(facts) - 1
    while lo <= hi:
        mid = (lo + hi) // 2
        shorter = sms.fold_to_gsm(job.render("sms", max_items=mid))
        if _fits(shorter):
            best, lo = shorter, mid + 1
        else:
            body, hi = shorter, mid - 1
    return best if best is not None else sms.truncate(body, SMS_MAX_SEGMENTS)


def render_notice(kind: str, channel: str, locale: str, facts: dict[str, Any]) -> Rendered:
    """Render one notice for one channel and locale.

    sms -> body only, at most SMS_MAX_SEGMENTS; email -> subject, text body and html; every other channel
    (console, whatsapp, slack, teams, webhook, unknown ones) -> the text body. Raises ValueError for an
    unknown kind or a malformed channel name, jinja2.UndefinedError for a missing fact.
    """
    job = _job(kind, channel, locale, facts)
    if channel == "email":
        return Rendered(body=job.render("text"), subject=job.render("subject"), html=job.render("html"))
    if channel == "sms":
        return Rendered(body=_render_sms(job, facts))
    body = job.render("text")
    if channel in CARD_CHANNELS:
        return Rendered(body=body, card=_card(job, body))
    return Rendered(body=body)  # console, webhook, and any channel not known here


def render_approved(kind: str, channel: str, locale: str, facts: dict[str, Any], text: str) -> Rendered:
    """A notice whose words a person approved (services/approvals.py): their text as the body, in the
    notice's e-mail subject and HTML frame and with its card's buttons (an offer's Accept / No thanks)."""
    job = _job(kind, channel, locale, facts)
    if channel == "email":
        with _reading(job.values["locale"], job.values["tz"]):
            page = environment(True).get_template("layout/approved.html.j2").render(
                {**job.values, "text": _with_answer(job, text), "subject": job.render("subject")})
        return Rendered(body=_with_answer(job, text), subject=job.render("subject"), html=_tidy(page, "html"))
    if channel in CARD_CHANNELS:
        return Rendered(body=text, card={**_card(job, text), "text": text})
    return Rendered(body=_with_answer(job, text))


def _with_answer(job: _Job, text: str) -> str:
    """Without buttons, an offer must still say how to answer it: the template's line, unless the text has it."""
    with _reading(job.values["locale"], job.values["tz"]):
        how = environment(False).get_template(f"{job.locale}/_answer.j2").render(job.values).strip()
    return text if not how or how in text else f"{text}\n\n{how}"


def _job(kind: str, channel: str, locale: str, facts: dict[str, Any]) -> _Job:
    if kind not in KINDS:
        raise ValueError(f"unknown notice kind {kind!r}")
    if not _NAME.match(channel):
        raise ValueError(f"bad channel name {channel!r}")
    clash = _RESERVED & facts.keys()
    if clash:
        raise ValueError(f"facts may not use the reserved names {sorted(clash)}")
    resolved = resolve_locale(locale)
    babel_locale = _babel_locale(locale, resolved)
    return _Job(kind, channel, resolved, {
        **facts,
        "kind": kind,
        "channel": channel,
        "audience": "customer" if kind in CUSTOMER_KINDS else "staff",
        "locale": babel_locale,
        "lang": babel_locale.replace("_", "-"),
        "lib": f"{resolved}/_lib.j2",
        "tz": _timezone(facts),
    })


# Channels whose senders build rich messages (Block Kit, Adaptive Cards, WhatsApp buttons) from a card.
CARD_CHANNELS = frozenset({"slack", "teams", "whatsapp"})


def _card(job: _Job, body: str) -> dict[str, Any]:
    """A channel-neutral card: {"kind", "title", "text", "fields": [{label, value}],
    "actions": [{id, label, value}], "topic"}; each sender draws it in its own medium.

    The structured parts come from `<locale>/_card.j2`, one tab-separated line each.
    """
    template = environment(False, one_line=True).get_template(f"{job.locale}/_card.j2")
    with _reading(job.values["locale"], job.values["tz"]):
        raw = template.render({**job.values, "style": "card", "layout": "layout/text.j2", "max_items": None})
    card: dict[str, Any] = {"kind": job.kind, "title": job.render("subject"), "text": body, "fields": [],
                            "actions": [], "topic": None}
    for line in raw.splitlines():
        part = line.strip().split("\t")
        if part[0] == "field" and len(part) == 3:
            card["fields"].append({"label": part[1], "value": part[2]})
        elif part[0] == "action" and len(part) == 4:
            card["actions"].append({"id": part[1], "label": part[2], "value": part[3]})
        elif part[0] == "topic" and len(part) == 2:
            card["topic"] = part[1]
    return card
