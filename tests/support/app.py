"""The API app in-process, as Starlette's TestClient reaches it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ember.config import load_config
from ember.serve_app import AppContext, build_context
from ember.storage import Migrator

TEST_HOST = {"EMBER_SERVER_ALLOWED_HOSTS": "testserver"}
"""Starlette's TestClient sends ``Host: testserver``."""


def app_context(home: Path, *, migrate: bool = True, **settings: str) -> AppContext:
    """The app context of an ember at ``home`` that answers ``Host: testserver``."""
    context = build_context(load_config(None, {"EMBER_HOME": str(home), **TEST_HOST, **settings}))
    if migrate:
        Migrator(context.database).upgrade()
    return context


@contextmanager
def migrated_context(home: Path, **settings: str) -> Iterator[AppContext]:
    """:func:`app_context`, its database disposed of on exit."""
    context = app_context(home, **settings)
    try:
        yield context
    finally:
        context.database.dispose()
