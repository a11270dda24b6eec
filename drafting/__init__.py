"""Drafts of personal customer messages (docs/drafting.md).

- `compose.compose()`: the model's draft when it is grounded in the facts, else the template's, with why.
- `grounding.check()`: every date, quantity, SKU, price, order number and contact in a text against the facts.
- `llm.write()`: one structured-output call to an OpenAI-compatible model.

No store, no web: the caller (services/drafts.py) loads the facts and keeps the result.
"""
