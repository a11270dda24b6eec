"""Front doors: the HTTP API (and, in later issues, the chat channels)."""
