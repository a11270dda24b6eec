"""The rule pipeline against a corpus of varied utterances (tests/data/intents_corpus.json)."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

from intents import Asker, Catalog, understand
from intents.model import CUSTOMER_INTENTS, STAFF_INTENTS, UNKNOWN, Named

CORPUS = Path(__file__).resolve().parents[1] / "data" / "intents_corpus.json"


def load() -> tuple[dict[str, Any], Catalog, date]:
    data = json.loads(CORPUS.read_text())
    cat = data["catalog"]
    catalog = Catalog(products=tuple(Named(p["sku"], p["name"]) for p in cat["products"]),
                      warehouses=tuple(Named(w["id"], w["name"]) for w in cat["warehouses"]),
                      suppliers=tuple(Named(s["id"], s["name"]) for s in cat["suppliers"]))
    return data, catalog, date.fromisoformat(data["today"])


def evaluate() -> tuple[int, int, int, list[str]]:
    data, catalog, today = load()
    intents_ok = entities_ok = 0
    misses = []
    for u in data["utterances"]:
        got = understand(u["text"], catalog, Asker(u["audience"], today))
        i_ok, e_ok = got.intent == u["intent"], got.entities == u["entities"]
        intents_ok += i_ok
        entities_ok += e_ok
        if not (i_ok and e_ok):
            misses.append(f"{u['audience']:8} {u['text']!r}: {got.intent} {got.entities} "
                          f"(expected {u['intent']} {u['entities']})")
    return len(data["utterances"]), intents_ok, entities_ok, misses


def test_corpus_is_large_and_varied() -> None:
    data, _, _ = load()
    utterances = data["utterances"]
    assert len(utterances) >= 300
    for intent in (*CUSTOMER_INTENTS, *STAFF_INTENTS, UNKNOWN):
        assert sum(u["intent"] == intent for u in utterances) >= 5, intent


def test_rules_reach_95_percent_on_intents_and_entities() -> None:
    total, intents_ok, entities_ok, misses = evaluate()
    print(f"\nintents: {intents_ok}/{total} = {intents_ok / total:.1%}; "
          f"entities: {entities_ok}/{total} = {entities_ok / total:.1%}")
    for miss in misses:
        print("  miss:", miss)
    assert intents_ok / total >= 0.95
    assert entities_ok / total >= 0.95
