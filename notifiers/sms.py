"""SMS length rules: which alphabet a text needs, how many segments it costs, and how to make it fit.

A message is billed and delivered per segment. GSM-7 carries 160 septets in one segment, or 153 per
part once concatenated (the user data header takes the rest); UCS-2 carries 70 UTF-16 code units, or
67 per part. A single character outside GSM-7 turns the whole message into UCS-2, which is why
folding a few accents can halve the segment count.
"""

from __future__ import annotations

import unicodedata
from functools import lru_cache
from typing import Literal

SMS_MAX_SEGMENTS = 2

# GSM 03.38 default alphabet, in code order (ESC 0x1B left out: it only introduces the extension table).
GSM_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
# Extension table: each costs ESC + the character, two septets.
GSM_EXTENSION = frozenset("\f^{}\\[~]|€")
_GSM = GSM_BASIC | GSM_EXTENSION

GSM_SINGLE, GSM_PART = 160, 153
UCS2_SINGLE, UCS2_PART = 70, 67

Encoding = Literal["GSM-7", "UCS-2"]

# Look-alikes that Unicode decomposition does not give (it only strips accents).
_FOLD = {
    "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'", "\u2032": "'", "`": "'", "\u00b4": "'",
    "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u201f": '"', "\u2033": '"', "«": '"', "»": '"',
    "\u2010": "-", "\u2011": "-", "\u2012": "-", "\u2013": "-", "\u2014": "-", "\u2015": "-", "\u2212": "-",
    "\u2026": "...", "\u2022": "-", "·": "-", "\u00d7": "x", "\u2044": "/",
    "\u00a0": " ", "\u2007": " ", "\u2009": " ", "\u202f": " ", "\t": " ",
    "ç": "c", "œ": "oe", "Œ": "OE", "ð": "d", "Ð": "D", "þ": "th", "Þ": "Th", "ł": "l", "Ł": "L",
    "ª": "a", "º": "o", "°": "o", "¢": "c", "™": "TM", "®": "(R)", "©": "(C)",
}


def encoding(text: str) -> Encoding:
    return "GSM-7" if _GSM.issuperset(text) else "UCS-2"


def _units(text: str, enc: Encoding) -> list[int]:
    """Size of each character in its alphabet's units; a character is never split across two parts."""
    if enc == "GSM-7":
        return [2 if c in GSM_EXTENSION else 1 for c in text]
    return [2 if ord(c) > 0xFFFF else 1 for c in text]  # astral characters are a UTF-16 surrogate pair


def segments(text: str) -> int:
    """Segments the text is sent as; an empty text still costs one."""
    enc = encoding(text)
    if enc == "GSM-7":
        single, part = GSM_SINGLE, GSM_PART
        doubles = sum(map(text.count, GSM_EXTENSION))
    else:
        single, part = UCS2_SINGLE, UCS2_PART
        doubles = len(text.encode("utf-16-le", "surrogatepass")) // 2 - len(text)  # astral: a surrogate pair
    if len(text) + doubles <= single:
        return 1
    if not doubles:  # every character one unit: parts simply fill up
        return -(-len(text) // part)
    count, used = 1, 0
    for u in _units(text, enc):
        if used + u > part:
            count, used = count + 1, 0
        used += u
    return count


@lru_cache(maxsize=4096)
def _fold_char(c: str) -> str:
    if c in GSM_BASIC or c in GSM_EXTENSION:
        return c
    if c in _FOLD:
        return _FOLD[c]
    parts = unicodedata.normalize("NFKD", c)  # á -> a + accent, ½ -> 1 + fraction slash + 2
    if parts != c:
        return "".join(_fold_char(p) for p in parts)
    kind = unicodedata.category(c)
    if kind in ("Mn", "Me", "Cf"):  # accents left over from decomposition, zero-width marks
        return ""
    return " " if kind.startswith("Z") else "?"


def fold_to_gsm(text: str) -> str:
    """Replace every character GSM-7 lacks with a close GSM-7 one ('?' when there is none).

    Characters GSM-7 has (é, ñ, Ñ, ¿, ¡, ü, Ü, à, è, ù, ì, ò, Ç, ...) are kept as they are.
    """
    if _GSM.issuperset(text):
        return text
    return "".join([c if c in _GSM else _fold_char(c) for c in text])


def truncate(text: str, max_segments: int = SMS_MAX_SEGMENTS) -> str:
    """The longest prefix of `text`, plus an ellipsis, that fits in `max_segments`; `text` if it fits."""
    if segments(text) <= max_segments:
        return text
    ellipsis = "..." if encoding(text) == "GSM-7" else "\u2026"
    lo, hi = 0, len(text)  # segments() grows with the prefix length, so bisect for the longest fit
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if segments(text[:mid].rstrip() + ellipsis) <= max_segments:
            lo = mid
        else:
            hi = mid - 1
    return text[:lo].rstrip() + ellipsis
