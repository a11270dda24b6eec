from __future__ import annotations

from datetime import date

from intents import Asker, Catalog, understand
from intents.model import Named

CATALOG = Catalog(
    products=(Named("KTL-200", "Blue kettle 1.7l"), Named("KTL-210", "Red kettle 1.7l"),
              Named("TST-4", "Four-slice toaster")),
    warehouses=(Named("LDS", "Leeds"), Named("BRS", "Bristol")),
    suppliers=(Named("KETTLECO", "KettleCo"),),
)
CUSTOMER = Asker("customer", date(2026, 3, 2))
STAFF = Asker("staff", date(2026, 3, 2))


def test_an_ambiguous_product_name_is_not_guessed() -> None:
    u = understand("is the kettle back?", CATALOG, CUSTOMER)
    assert u.intent == "subscribe_back_in_stock"
    assert "sku" not in u.entities and u.ambiguous == {"sku": ["KTL-200", "KTL-210"]}


def test_staff_intents_are_not_open_to_customers() -> None:
    assert understand("allocate KTL-200 now", CATALOG, STAFF).intent == "run_allocation"
    assert understand("allocate KTL-200 now", CATALOG, CUSTOMER).intent != "run_allocation"
    assert understand("open tasks", CATALOG, CUSTOMER).intent not in ("open_tasks", "complete_task")


def test_misspelled_names_and_formats() -> None:
    u = understand("whos waitng on the blue ketle in leeds", CATALOG, STAFF)
    assert (u.intent, u.entities) == ("waiting_on_sku", {"sku": "KTL-200", "warehouse_id": "LDS"})
    assert understand("any news on so-2026-0113", CATALOG, CUSTOMER).entities == {"order_id": "SO-2026-0113"}
    assert understand("¿CUÁNDO LLEGA el pedido #1042? 📦", CATALOG, CUSTOMER).entities == {"order_id": "1042"}


def test_nothing_fits_is_unknown_with_no_confidence() -> None:
    u = understand("what's the weather like", CATALOG, CUSTOMER)
    assert (u.intent, u.confidence) == ("unknown", 0.0)


def test_names_are_found_in_a_large_catalog() -> None:
    big = Catalog(products=(*CATALOG.products, *(Named(f"SKU-{i:05d}", f"Product {i} widget") for i in range(5000))))
    u = understand("is the blue ketle back?", big, CUSTOMER)
    assert u.entities == {"sku": "KTL-200"}
    assert understand("where is my order 1042", big, CUSTOMER).ambiguous == {}


def test_relative_dates() -> None:
    today = date(2026, 3, 2)  # a Monday
    for text, expected in [("can it come tomorrow?", "2026-03-03"), ("¿llega mañana?", "2026-03-03"),
                           ("in 10 days", "2026-03-12"), ("next friday", "2026-03-06"),
                           ("el próximo lunes", "2026-03-09"), ("by 2026-04-01", "2026-04-01")]:
        assert understand(text, CATALOG, Asker("customer", today)).entities.get("date") == expected, text
    assert "date" not in understand("sometime this week", CATALOG, Asker("customer", today)).entities
