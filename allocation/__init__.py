"""The allocation domain: pure functions over plain data (see model.py)."""
