"""The web UI's built assets: ``static/``, made from ``ui/`` in the repository by ``make up``
and ``make test`` (``index.html`` and hashed files under ``assets/``); served by
:mod:`ember.serve_app.ui`. No code of the UI runs in Python."""

from __future__ import annotations

from pathlib import Path

__all__ = ["static_root"]


def static_root() -> Path:
    """Where the built UI is (or would be) in this installation."""
    return Path(__file__).parent / "static"
