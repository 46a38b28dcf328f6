"""Usage rows written in batches off the call's path, on SQLite and Postgres; budgets that
apply to nobody read nothing."""

from __future__ import annotations

import asyncio
import threading

import pytest

from ember.chat import Usage
from ember.config import Budget, Price, ProvidersConfig
from ember.providers.budget import Budgets
from ember.providers.usage_writer import UsageWriter
from ember.storage import Database, SqlUsageLog
from ember.storage.records import UsageEntry


def entry(n: int) -> UsageEntry:
    return UsageEntry(
        principal="alice",
        provider="cloud",
        model="m",
        prompt_tokens=n,
        completion_tokens=1,
        cost_usd=0.0,
        request_id=f"r{n}",
    )


async def test_entries_reach_the_table_in_one_batch(database: Database) -> None:
    log = SqlUsageLog(database)
    writer = UsageWriter(log, flush_interval_s=0.05)
    for n in range(50):
        writer.add(entry(n))
    assert log.list(limit=100) == [], "nothing is written on the caller's path"
    await asyncio.sleep(0.3)
    rows = log.list(limit=100)
    assert sorted(row.request_id or "" for row in rows) == sorted(f"r{n}" for n in range(50))
    await writer.aclose()


async def test_close_writes_what_is_left(database: Database) -> None:
    log = SqlUsageLog(database)
    writer = UsageWriter(log, flush_interval_s=60)
    writer.add(entry(1))
    await writer.aclose()
    assert [row.request_id for row in log.list()] == ["r1"]


class Refusing:
    """A usage log whose writes fail until ``healed``."""

    def __init__(self, inner: SqlUsageLog) -> None:
        self.inner = inner
        self.healed = False

    def record_many(self, entries: list[UsageEntry]) -> int:
        if not self.healed:
            raise ConnectionError("database down")
        return self.inner.record_many(entries)


async def test_a_failed_batch_is_kept_for_the_next_flush(database: Database) -> None:
    log = SqlUsageLog(database)
    refusing = Refusing(log)
    writer = UsageWriter(refusing, flush_interval_s=60)  # type: ignore[arg-type]
    writer.add(entry(1))
    writer.add(entry(2))
    assert await writer.flush() == 0
    refusing.healed = True
    assert await writer.flush() == 2
    assert sorted(row.request_id or "" for row in log.list()) == ["r1", "r2"]
    await writer.aclose()


@pytest.mark.parametrize(
    ("config", "principal", "provider", "applies"),
    [
        (ProvidersConfig(), "alice", "local", False),
        (ProvidersConfig(principal_budgets={"*": Budget(cost_per_day_usd=1)}), "a", "local", False),
        (
            ProvidersConfig(
                prices={"cloud": Price(prompt_per_1k_usd=1)},
                principal_budgets={"*": Budget(cost_per_day_usd=1)},
            ),
            "a",
            "cloud",
            True,
        ),
        (ProvidersConfig(principal_budgets={"bob": Budget(tokens_per_day=5)}), "bob", "x", True),
        (ProvidersConfig(principal_budgets={"bob": Budget(tokens_per_day=5)}), "eve", "x", False),
        (ProvidersConfig(provider_budgets={"x": Budget(tokens_per_day=5)}), "eve", "x", True),
    ],
)
def test_applies_says_whether_check_could_refuse(
    database: Database, config: ProvidersConfig, principal: str, provider: str, applies: bool
) -> None:
    budgets = Budgets(config, SqlUsageLog(database))
    assert budgets.applies(principal, provider) is applies
    if not applies:
        huge = budgets.estimate(provider, 10**9, 10**9)
        budgets.check(principal, provider, huge)


def test_an_entry_is_priced_and_stamped(database: Database) -> None:
    config = ProvidersConfig(prices={"cloud": Price(prompt_per_1k_usd=2, completion_per_1k_usd=4)})
    made = Budgets(config, SqlUsageLog(database)).entry("a", "cloud", "m", Usage(1000, 500))
    assert made.cost_usd == pytest.approx(4.0) and made.ts is not None


class Stalling(Refusing):
    """A usage log whose write waits for :attr:`release`, then fails."""

    def __init__(self, inner: SqlUsageLog) -> None:
        super().__init__(inner)
        self.started = threading.Event()
        self.release = threading.Event()

    def record_many(self, entries: list[UsageEntry]) -> int:
        self.started.set()
        self.release.wait(30)
        return super().record_many(entries)


async def test_a_full_buffer_counts_every_entry_it_drops(database: Database) -> None:
    stalling = Stalling(SqlUsageLog(database))
    writer = UsageWriter(stalling, flush_interval_s=60, max_pending=3)  # type: ignore[arg-type]
    for n in range(5):
        writer.add(entry(n))
    assert writer.dropped == 2, "the two oldest made room"
    writing = asyncio.create_task(writer.flush())
    await asyncio.to_thread(stalling.started.wait, 30)
    for n in range(5, 8):
        writer.add(entry(n))
    assert writer.dropped == 2, "the batch in flight left the buffer room"
    stalling.release.set()
    assert await writing == 0
    assert writer.dropped == 5, "the failed batch put back had no room for three"
    stalling.healed = True
    assert await writer.flush() == 3
    await writer.aclose()
