"""The usage log on SQLite and on a real Postgres server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ember.storage import Database, SqlUsageLog, UsageEntry, UsageTotals

pytestmark = pytest.mark.slow

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)


def entry(**fields: object) -> UsageEntry:
    values: dict[str, object] = {
        "principal": "alice",
        "provider": "openai",
        "model": "gpt",
        "prompt_tokens": 10,
        "completion_tokens": 5,
        "cost_usd": 0.0015,
        "ts": NOW,
    }
    values.update(fields)
    return UsageEntry(**values)  # type: ignore[arg-type]


def test_record_roundtrip(database: Database) -> None:
    log = SqlUsageLog(database)
    stored = log.record(entry(request_id="r1", job_id="j" * 32, cost_usd=0.1234567))
    assert stored.id is not None
    assert stored.ts == NOW
    assert stored.cost_usd == pytest.approx(0.123457)
    assert (stored.request_id, stored.job_id, stored.total_tokens) == ("r1", "j" * 32, 15)
    assert log.list() == [stored]


def test_ts_defaults_to_now(database: Database) -> None:
    before = datetime.now(UTC)
    stored = SqlUsageLog(database).record(entry(ts=None))
    assert stored.ts is not None and stored.ts >= before - timedelta(seconds=1)


def test_totals_count_the_window_and_filter(database: Database) -> None:
    log = SqlUsageLog(database)
    log.record(entry(ts=NOW - timedelta(days=2)))
    log.record(entry())
    log.record(entry(principal="bob", cost_usd=0.5))
    log.record(entry(provider="ollama", cost_usd=0.0, prompt_tokens=100))
    since = NOW - timedelta(days=1)
    assert log.totals(since=since) == UsageTotals(calls=3, tokens=135, cost_usd=0.5015)
    assert log.totals(since=since, principal="alice") == UsageTotals(2, 120, 0.0015)
    assert log.totals(since=since, provider="openai") == UsageTotals(2, 30, 0.5015)
    assert log.totals(since=since, principal="alice", provider="ollama").tokens == 105
    assert log.totals(since=since, principal="nobody") == UsageTotals()


def test_list_newest_first_and_filtered(database: Database) -> None:
    log = SqlUsageLog(database)
    first = log.record(entry())
    second = log.record(entry(principal="bob"))
    third = log.record(entry(provider="ollama"))
    assert log.list() == [third, second, first]
    assert log.list(principal="alice") == [third, first]
    assert log.list(provider="openai", limit=1) == [second]


def test_groups_sum_by_workspace_principal_and_provider(database: Database) -> None:
    log = SqlUsageLog(database)
    log.record(entry(ts=NOW - timedelta(days=2)))
    log.record(entry())
    log.record(entry(prompt_tokens=1, completion_tokens=2, cost_usd=0.5))
    log.record(entry(provider="local", cost_usd=0.0))
    log.record(entry(principal="bob", workspace="team"))
    since = NOW - timedelta(days=1)
    groups = log.groups(since=since)
    assert [(g.workspace, g.principal, g.provider, g.requests) for g in groups] == [
        ("default", "alice", "local", 1),
        ("default", "alice", "openai", 2),
        ("team", "bob", "openai", 1),
    ]
    openai = groups[1]
    assert (openai.prompt_tokens, openai.completion_tokens) == (11, 7)
    assert openai.cost_usd == pytest.approx(0.5015)
    assert [g.principal for g in log.groups(since=since, workspace="team")] == ["bob"]
    assert {g.provider for g in log.groups(since=since, principal="alice")} == {"local", "openai"}
    assert log.groups(since=NOW + timedelta(seconds=1)) == []
