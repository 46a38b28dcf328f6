"""The stderr filter drops only the lines it names, whoever writes them to fd 2."""

from __future__ import annotations

import os

import pytest

from ember.cli.stderr_filter import RAY_DATA_RESTART_WARNING, dropping


def test_only_the_named_lines_are_dropped(capfd: pytest.CaptureFixture[str]) -> None:
    with dropping([RAY_DATA_RESTART_WARNING]):
        os.write(2, b"[E core_worker.cc] Actor X " + RAY_DATA_RESTART_WARNING.encode() + b".\n")
        os.write(2, b"a real error\n")
        os.write(2, b"a partial line, then " + RAY_DATA_RESTART_WARNING.encode()[:10])
        os.write(2, b" and its end\n")
    os.write(2, b"after\n")
    expected = f"a real error\na partial line, then {RAY_DATA_RESTART_WARNING[:10]} and its end\n"
    assert capfd.readouterr().err == expected + "after\n"


def test_nothing_is_dropped_without_patterns(capfd: pytest.CaptureFixture[str]) -> None:
    with dropping([]):
        os.write(2, RAY_DATA_RESTART_WARNING.encode() + b"\n")
    assert capfd.readouterr().err == RAY_DATA_RESTART_WARNING + "\n"
