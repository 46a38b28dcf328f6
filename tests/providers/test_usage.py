"""The one usage rule: the provider's count when it reported any tokens, else the estimate."""

from __future__ import annotations

import pytest

from ember.chat import Usage
from ember.providers.usage import CHARS_PER_TOKEN, estimate_tokens, reported, usage_or_estimate


@pytest.mark.parametrize(
    ("texts", "tokens"),
    [([], 0), ([""], 0), (["abc"], 1), (["abcd"], 1), (["abcde"], 2), (["ab", "cde"], 2)],
)
def test_estimate_is_characters_over_four_rounded_up(texts: list[str], tokens: int) -> None:
    assert CHARS_PER_TOKEN == 4
    assert estimate_tokens(texts) == tokens


@pytest.mark.parametrize(
    ("usage", "counts"),
    [(None, False), (Usage(), False), (Usage(0, 3), True), (Usage(5, 0), True)],
)
def test_what_counts_as_reported(usage: Usage | None, counts: bool) -> None:
    assert reported(usage) is counts


def test_reported_usage_is_kept_as_it_is() -> None:
    given = Usage(7, 0)
    assert usage_or_estimate(given, 99, ["whatever"]) is given


@pytest.mark.parametrize("given", [None, Usage(0, 0)])
def test_no_usage_is_the_estimate(given: Usage | None) -> None:
    assert usage_or_estimate(given, 12, ["Echo:", " hello"]) == Usage(12, 3)
