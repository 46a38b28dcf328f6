"""Keeps the span trees ``docs/observability.md`` shows true: a test renders a real job's trace
and the page's block must hold the same spans at the same depths (durations and sibling order
aside: those differ from run to run)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from tests.conftest import REPO

__all__ = ["assert_trace_documented", "tree_text"]

PAGE = REPO / "docs" / "observability.md"
_DURATION = re.compile(r" \d+\.\d ms")


def tree_text(roots: Sequence[dict[str, Any]]) -> str:
    """``GET /jobs/{id}/trace``'s roots drawn as the page draws them."""
    lines: list[str] = []

    def walk(node: dict[str, Any], depth: int) -> None:
        status = "" if node["status"] == "unset" else f" {node['status']}"
        lines.append(
            f"{'  ' * depth}{node['name']}  [{node['service']}] "
            f"{node['duration_ms']:.1f} ms{status}"
        )
        for child in node["children"]:
            walk(child, depth + 1)

    for root in roots:
        walk(root, 0)
    return "\n".join(lines)


def _shape(text: str) -> list[str]:
    return sorted(_DURATION.sub("", line) for line in text.strip().splitlines())


def assert_trace_documented(roots: Sequence[dict[str, Any]], name: str) -> None:
    """The page's ``trace:{name}`` block shows these spans (see the module)."""
    match = re.search(rf"<!-- trace:{name} -->\n```text\n(.*?)\n```", PAGE.read_text(), re.DOTALL)
    assert match, f"docs/observability.md has no trace:{name} block"
    actual = tree_text(roots)
    assert _shape(match.group(1)) == _shape(actual), f"the real trace is:\n{actual}"
