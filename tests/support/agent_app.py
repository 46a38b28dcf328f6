"""The whole API (:func:`~tests.support.live_app.live_app`) with the scripted chat fake as
its only model: the alias ``default`` is ``scripted/agent-model``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.fakes.scripted_chat_fake import ScriptedChatServer
from tests.support.live_app import LiveApp, live_app

__all__ = ["scripted_app"]


@contextmanager
def scripted_app(home: Path, model: ScriptedChatServer) -> Iterator[LiveApp]:
    """Serve ember under ``home`` answering every model call from ``model``'s script."""
    providers = {
        "scripted": {"kind": "openai", "base_url": model.base_url, "api_key": "unused"},
        "embeddings": {"kind": "sentence-transformers"},
    }
    settings = {
        "EMBER_PROVIDERS_INSTANCES": json.dumps(providers),
        "EMBER_ROUTER_DEFAULT_PROVIDER": "scripted",
        "EMBER_ROUTER_ALIASES": json.dumps({"default": ["scripted/agent-model"]}),
    }
    with live_app(home, settings) as app:
        yield app
