"""SMS alphabet detection, segment counting at the part boundaries, folding and cutting."""

from __future__ import annotations

import pytest

from notifiers.sms import SMS_MAX_SEGMENTS, encoding, fold_to_gsm, segments, truncate

CYRILLIC = "\u044f"  # one UTF-16 unit, outside GSM-7
EMOJI = "\U0001f600"  # two UTF-16 units (a surrogate pair)


@pytest.mark.parametrize(("text", "expected"), [
    ("", "GSM-7"),
    ("Order SO-1: 3x Widget (Mar 9, 2026)", "GSM-7"),
    ("¿Qué tal? Ñandú", "UCS-2"),  # ú is not in GSM-7
    ("¿Qué? ¡Sí! ñ Ñ ü Ü à è ù ì ò Ç é É", "UCS-2"),  # í is not either
    ("¿Qué? ¡Ya! ñ Ñ ü Ü à è ù ì ò Ç é É", "GSM-7"),
    ("price: 5€ [a|b] {c} ~^\\", "GSM-7"),
    ("ç", "UCS-2"),  # GSM-7 has Ç only
    ("smile " + EMOJI, "UCS-2"),
    ("tab\there", "UCS-2"),
    ("“quoted”", "UCS-2"),
])
def test_encoding(text: str, expected: str) -> None:
    assert encoding(text) == expected


@pytest.mark.parametrize(("text", "expected"), [
    ("", 1),
    ("a" * 160, 1),
    ("a" * 161, 2),
    ("a" * 306, 2),  # 153 x 2
    ("a" * 307, 3),
    ("€" * 80, 1),  # extension characters cost two septets
    ("€" * 81, 2),
    ("a" * 159 + "€", 2),
    ("a" * 152 + "€" + "a" * 152, 3),  # 306 septets, but the escape pair may not straddle two parts
    (CYRILLIC * 70, 1),
    (CYRILLIC * 71, 2),
    (CYRILLIC * 134, 2),  # 67 x 2
    (CYRILLIC * 135, 3),
    (EMOJI * 35, 1),  # 70 UTF-16 units
    (EMOJI * 36, 2),
    ("a" * 66 + EMOJI + "a" * 66, 3),  # 134 units, but the surrogate pair may not be split
])
def test_segments(text: str, expected: int) -> None:
    assert segments(text) == expected


def test_fold_keeps_what_gsm_has_and_replaces_the_rest() -> None:
    assert fold_to_gsm("¿Cómo está? ¡Ñandú! é ñ Ñ ü Ü à è ù ì ò Ç") == "¿Como esta? ¡Ñandu! é ñ Ñ ü Ü à è ù ì ò Ç"
    typographic = "\u201cHi\u201d \u2018there\u2019 \u2013 x \u2014 y\u2026 Łódź ça 60\u00d760\u00a0cm"
    assert fold_to_gsm(typographic) == "\"Hi\" 'there' - x - y... Lodz ca 60x60 cm"
    assert fold_to_gsm("日本 " + EMOJI) == "?? ?"
    assert fold_to_gsm("Información: «Café» ½ kg, ﬁne, x²") == 'Informacion: "Café" 1/2 kg, fine, x2'


def test_fold_is_idempotent_on_gsm_text() -> None:
    text = "Pedido A1: 3x Señal (9 mar 2026); +4 más"
    folded = fold_to_gsm(text)
    assert folded == "Pedido A1: 3x Señal (9 mar 2026); +4 mas"
    assert fold_to_gsm(folded) == folded


@pytest.mark.parametrize(("text", "ellipsis"), [("word " * 100, "..."), (CYRILLIC * 300, "\u2026")])
def test_truncate_fits_and_marks_the_cut(text: str, ellipsis: str) -> None:
    cut = truncate(text)
    assert segments(cut) == SMS_MAX_SEGMENTS
    assert cut.endswith(ellipsis) and not cut.endswith(" " + ellipsis)
    assert text.startswith(cut[: -len(ellipsis)])


def test_truncate_leaves_a_fitting_text_alone() -> None:
    assert truncate("a" * 306) == "a" * 306
    assert truncate("a" * 161, max_segments=1) == "a" * 157 + "..."


def _segments_by_units(text: str) -> int:
    """The definition, unit by unit: segments() takes shortcuts when every character costs one unit."""
    gsm = encoding(text) == "GSM-7"
    units = [2 if (c in "\f^{}\\[~]|€" if gsm else ord(c) > 0xFFFF) else 1 for c in text]
    single, part = (160, 153) if gsm else (70, 67)
    if sum(units) <= single:
        return 1
    count, used = 1, 0
    for u in units:
        if used + u > part:
            count, used = count + 1, 0
        used += u
    return count


@pytest.mark.parametrize("unit", ["a", "€", CYRILLIC, EMOJI, "a€", CYRILLIC + EMOJI, "aaaaaaa€", "é\u0301"])
def test_segments_match_the_unit_by_unit_count(unit: str) -> None:
    for n in range(0, 520, 1 if len(unit) == 1 else 3):
        text = (unit * (n // len(unit) + 1))[:n]
        assert segments(text) == _segments_by_units(text), (unit, n)


def test_fold_leaves_gsm_text_as_it_is_and_folds_each_character_alike() -> None:
    text = "Order SO-1: 3x Widget [x] {y} 5€ ~ ^ | \\ ¿¡ñÑ"
    assert fold_to_gsm(text) == text
    assert fold_to_gsm("ú" * 3 + "a" + "“ú”") == 'uuua"u"'
