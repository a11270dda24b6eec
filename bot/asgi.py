"""The API as uvicorn imports it in each process of `backorder serve --workers N`.

uvicorn starts several processes only from an import string (each process imports the app itself; an app
object cannot cross a process boundary), so each process builds its Context here from the settings: the
environment and the config file, which it inherits from `serve` together with the working directory.

These processes serve HTTP and nothing else: no background applier, no notification worker. POST /events
(wait=true) still applies its events in the request; events stored with wait=false, the outbox and the
scheduled jobs are the `backorder worker` processes' work (docs/deploy.md). `serve` migrated the schema
before starting them, so they do not race to do it.
"""

from __future__ import annotations

from fastapi import FastAPI

from backorder.config import load_settings
from backorder.logs import configure as configure_logging
from bot.api import create_app
from services.context import Context

IMPORT_STRING = "bot.asgi:create"


def create() -> FastAPI:
    """uvicorn's app factory (`factory=True`): one API, no background threads."""
    settings = load_settings()
    configure_logging(settings.logging)
    return create_app(Context.from_settings(settings), background_applier=False, notify_worker=False)
