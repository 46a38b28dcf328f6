"""The real bubblewrap sandbox, checked once for the session (skipped, with the reason, on a
machine where it cannot run)."""

from __future__ import annotations

import pytest

from ember.errors import SandboxUnavailable
from ember.sandbox import BubblewrapSandbox


@pytest.fixture(scope="session")
def bubblewrap() -> BubblewrapSandbox:
    sandbox = BubblewrapSandbox()
    try:
        sandbox.check()
    except SandboxUnavailable as exc:
        pytest.skip(f"no sandbox here: {exc}")
    return sandbox
