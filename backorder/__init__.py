"""backorder-bot: the console script and the configuration shared by every front door."""
