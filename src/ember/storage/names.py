"""The one rule for names that appear in URLs: collections and workspaces."""

from __future__ import annotations

import re

from ember.errors import ValidationFailed

__all__ = ["NAME_PATTERN", "check_name"]

NAME_PATTERN = r"^[a-z0-9][a-z0-9_\-]{0,63}$"
"""Lowercase letters, digits, ``_`` and ``-``; 1 to 64 characters, not starting with a sign."""

_NAME = re.compile(NAME_PATTERN)


def check_name(what: str, name: str) -> str:
    """``name`` when it follows :data:`NAME_PATTERN`.

    :raises ValidationFailed: it does not; the message names ``what`` and the rule.
    """
    if not _NAME.fullmatch(name):
        raise ValidationFailed(
            f"invalid {what} name {name!r}: use 1 to 64 lowercase letters, digits, '_' or '-', "
            "starting with a letter or digit"
        )
    return name
