"""A call's token usage: the provider's count when it reported one, else ember's estimate.

One rule, used wherever usage is settled: by the router for the usage row it writes and the
answer it returns (:meth:`~ember.providers.router.Router.chat`,
:class:`~ember.providers.routed_stream.RoutedStream`), and so by everything that reports
usage after it (the ``/v1`` and ``/api`` answers, the model job kinds), which read the
router's. A provider reported usage when it gave a :class:`~ember.chat.Usage` with at least
one token; none, or all zeros (Ollama without its counts, a server that ignores
``stream_options``), means the estimate: the prompt's and the answer's characters over
:data:`CHARS_PER_TOKEN`, rounded up.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import TypeGuard

from ember.chat import Usage

__all__ = ["CHARS_PER_TOKEN", "estimate_tokens", "reported", "usage_or_estimate"]

CHARS_PER_TOKEN = 4
"""The estimate of tokens: one token per four characters, rounded up."""


def estimate_tokens(texts: Iterable[str]) -> int:
    """Tokens ``texts`` probably take: their characters over :data:`CHARS_PER_TOKEN`."""
    return math.ceil(sum(len(text) for text in texts) / CHARS_PER_TOKEN)


def reported(usage: Usage | None) -> TypeGuard[Usage]:
    """Whether a provider's ``usage`` counts anything (``None`` and all zeros do not)."""
    return usage is not None and usage.total_tokens > 0


def usage_or_estimate(usage: Usage | None, prompt_tokens: int, answer: Iterable[str]) -> Usage:
    """The provider's ``usage`` when :func:`reported`, else ``prompt_tokens`` (the router's
    estimate of the prompt) and the estimate of the ``answer`` texts."""
    if reported(usage):
        return usage
    return Usage(prompt_tokens, estimate_tokens(answer))
